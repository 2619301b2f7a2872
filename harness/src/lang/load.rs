//! Loading a spec: YAML parsing (serde-saphyr), which also checks each step's
//! own rules, then `check` for what spans steps.
//!
//! Every error carries the file, line and column of the node at fault and says
//! what was expected there; `SpecError::render` shows it with the source line.

use super::{RawSpec, RawStep, Spec};
use serde_saphyr::{Location, Spanned};
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct SpecError {
    pub path: PathBuf,
    pub line: u64,
    pub column: u64,
    pub message: String,
    source: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

impl std::error::Error for SpecError {}

impl SpecError {
    /// The error with the offending line of the spec under it, the way
    /// compilers show errors.
    pub fn render(&self, color: bool) -> String {
        use annotate_snippets::{AnnotationKind, Level, Renderer, Snippet};
        let span = self.byte_span();
        let path = self.path.display().to_string();
        let title = format!("{}:{}:{}: {}", path, self.line, self.column, self.message);
        let report = &[Level::ERROR.primary_title(&self.message).element(
            Snippet::source(&self.source)
                .path(&path)
                .annotation(AnnotationKind::Primary.span(span).label("here")),
        )];
        let renderer = if color { Renderer::styled() } else { Renderer::plain() };
        if self.line == 0 {
            return format!("error: {title}");
        }
        format!("{}\n", renderer.render(report))
    }

    /// From line and column (1-based) to the byte range of the token there.
    fn byte_span(&self) -> std::ops::Range<usize> {
        let mut offset = 0;
        for (i, line) in self.source.split_inclusive('\n').enumerate() {
            if i as u64 + 1 == self.line {
                let col = line
                    .char_indices()
                    .nth(self.column.saturating_sub(1) as usize)
                    .map(|(b, _)| b)
                    .unwrap_or(0);
                let rest = &line[col..];
                let len = token_len(rest);
                let start = offset + col;
                return start..(start + len).min(self.source.len());
            }
            offset += line.len();
        }
        self.source.len()..self.source.len()
    }
}

/// Loads and checks a spec file.
pub fn load(path: &Path) -> Result<Spec, SpecError> {
    let source = std::fs::read_to_string(path).map_err(|e| SpecError {
        path: path.to_path_buf(),
        line: 0,
        column: 0,
        message: format!("cannot read the spec: {e}"),
        source: String::new(),
    })?;
    load_str(path, &source)
}

/// Loads a spec from text; `path` is used in messages only.
pub fn load_str(path: &Path, source: &str) -> Result<Spec, SpecError> {
    let err = |loc: Option<Location>, message: String| {
        let loc = loc.unwrap_or(Location::UNKNOWN);
        SpecError {
            path: path.to_path_buf(),
            line: loc.line().max(1),
            column: loc.column().max(1),
            message,
            source: source.to_string(),
        }
    };
    let raw: RawSpec = serde_saphyr::from_str(source).map_err(|e| {
        let options = serde_saphyr::render_options! { snippets: serde_saphyr::SnippetMode::Off };
        let text = e.render_with_options(options);
        let message = clean_message(&text);
        let (line, column, message) = match bare_step(source, e.location(), &text) {
            Some(bare) => bare,
            None => match step_of_map(source, e.location(), &message) {
                Some((line, column)) => (line, column, message),
                None => return err(e.location(), message),
            },
        };
        SpecError {
            line,
            column,
            message,
            ..err(e.location(), String::new())
        }
    })?;

    // The steps at their levels: a connection step names its connection,
    // `each` holds only connection steps.
    let mut raw = raw;
    let scenarios = std::mem::take(&mut raw.scenarios)
        .into_iter()
        .map(|s| {
            let (referenced, defined) = (s.referenced, s.defined);
            s.value.lower().map(|v| Spanned::new(v, referenced, defined))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|(at, message)| err(Some(at), message))?;
    if let Some((loc, message)) = super::check::check(&raw, &scenarios) {
        return Err(err(loc, message));
    }
    Ok(Spec {
        path: path.to_path_buf(),
        lab: raw.lab,
        programs: raw.programs,
        frames: raw.frames,
        docroot: raw.docroot,
        scenarios: scenarios.into_iter().map(|s| s.value).collect(),
    })
}

/// The length of the YAML token at the start of `rest`: a quoted string, or
/// a plain scalar up to the next flow indicator, comment or line end.
fn token_len(rest: &str) -> usize {
    let mut chars = rest.char_indices();
    match chars.next() {
        None => 1,
        Some((_, q @ ('"' | '\''))) => {
            let mut escaped = false;
            for (i, c) in chars {
                if c == q && !escaped {
                    return i + 1;
                }
                escaped = c == '\\' && !escaped;
            }
            rest.trim_end().len().max(1)
        }
        Some(_) => rest
            .find([',', '}', ']', '#', '\n'])
            .unwrap_or(rest.len())
            .min(rest.trim_end().len())
            .max(1),
    }
}

/// A step written as a bare word (`- close`) reaches serde as a variant
/// still owed its value: serde-saphyr takes the next list item for it
/// ("unknown field") or finds the list's end ("unexpected sequence end").
/// When the last item before the error's line is such a word, say what a
/// step looks like, and point at the word.
fn bare_step(source: &str, at: Option<Location>, text: &str) -> Option<(u64, u64, String)> {
    if !text.contains("unexpected sequence end") && !text.contains("unknown field") {
        return None;
    }
    let lines: Vec<&str> = source.lines().collect();
    let before = (at?.line() as usize).saturating_sub(1).min(lines.len());
    let (index, line) = lines[..before]
        .iter()
        .enumerate()
        .rev()
        .find(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))?;
    let item = line.trim_start().strip_prefix('-')?;
    let word = item.split('#').next()?.trim();
    if word.is_empty() || !word.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
        return None;
    }
    // Only a step's keyword (a bare `- mytag` in a list of tags is fine):
    // ask the step type itself, which refuses any other word as unknown.
    if let Err(e) = serde_saphyr::from_str::<RawStep>(&format!("{word}: {{}}")) {
        if e.to_string().contains("unknown variant") {
            return None;
        }
    }
    let column = line.len() - item.trim_start().len() + 1;
    Some((
        index as u64 + 1,
        column as u64,
        format!(
            "expected a step as a one-key map, `{word}: ...`; a bare `{word}` has no value. \
             Write `{word}: <name>`, or `{word}: {{}}` inside `each` (its connection is the member's)"
        ),
    ))
}

/// A step's own rules are checked as serde builds the step from its map
/// (`try_from`), and serde-saphyr places such an error at the map: its `{`,
/// or the first key of a block map. The error is about the step, so point
/// at the step's keyword (`- expect: {...`). An unknown key is about that
/// key and keeps its place.
fn step_of_map(source: &str, at: Option<Location>, message: &str) -> Option<(u64, u64)> {
    if message.starts_with("unknown field") {
        return None;
    }
    let at = at?;
    let lines: Vec<&str> = source.lines().collect();
    let index = (at.line() as usize).checked_sub(1)?;
    let line = lines.get(index)?;
    let column = (at.column() as usize).checked_sub(1)?;
    let (before, rest) = line.split_at(line.char_indices().nth(column)?.0);
    // The keyword column of a line `  - keyword:` that ends where `tail` is.
    let keyword = |text: &str| -> Option<u64> {
        let item = text.trim_start().strip_prefix('-')?;
        let word = item.trim().strip_suffix(':')?;
        (!word.is_empty() && word.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .then(|| (text.len() - item.trim_start().len() + 1) as u64)
    };
    if rest.starts_with('{') {
        return keyword(before).map(|col| (at.line(), col));
    }
    if !before.trim().is_empty() {
        return None;
    }
    let (previous, text) = lines[..index]
        .iter()
        .enumerate()
        .rev()
        .find(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))?;
    let text = text.split(" #").next().unwrap_or(text).trim_end();
    let col = keyword(text)?;
    (col as usize <= column).then_some((previous as u64 + 1, col))
}

/// serde-saphyr's text carries its own location prefix/suffix; keep the words.
/// It writes a line break inside a message as `\n` (a regex's error spans
/// lines): give the lines back.
fn clean_message(text: &str) -> String {
    let first = text.lines().next().unwrap_or(text).trim().replace("\\n", "\n");
    let first = first.strip_prefix("error: ").unwrap_or(&first);
    if let Some(key) = first.strip_prefix("duplicate mapping key: ") {
        let key = key.split(',').next().unwrap_or(key);
        return format!("expected each key once in a map; `{key}` appears twice");
    }
    match first.rfind(" at line ") {
        Some(i) => first[..i].to_string(),
        None => first.to_string(),
    }
}
