//! Loading a spec: YAML parsing (serde-saphyr) and the checks serde can't do.
//!
//! Every error carries the file, line and column of the node at fault and says
//! what was expected there; `SpecError::render` shows it with the source line.

use super::steps::*;
use super::{RawSpec, Spec};
use serde_saphyr::{Location, Spanned};
use std::collections::{BTreeMap, HashMap, HashSet};
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
        match bare_step(source, e.location(), &text) {
            Some((line, column, message)) => SpecError {
                line,
                column,
                message,
                ..err(e.location(), String::new())
            },
            None => err(e.location(), clean_message(&text)),
        }
    })?;

    let mut checker = Checker {
        errors: Vec::new(),
        programs: &raw.programs,
    };
    for (name, program) in &raw.programs {
        if program.command.is_empty() || program.command[0].trim().is_empty() {
            checker
                .errors
                .push((None, format!("expected program `{name}` to have a non-empty `command`")));
        }
    }
    let mut names = HashSet::new();
    for scenario in &raw.scenarios {
        if !names.insert(scenario.value.name.clone()) {
            checker.errors.push((
                Some(scenario.referenced),
                format!(
                    "expected scenario names to be unique; `{}` is used twice",
                    scenario.value.name
                ),
            ));
        }
        if scenario.value.steps.is_empty() {
            checker.errors.push((
                Some(scenario.referenced),
                "expected a scenario with at least one step".into(),
            ));
        }
        let mut scope = Scope::default();
        checker.steps(&scenario.value.steps, &mut scope, None);
    }
    if let Some((loc, message)) = checker.errors.into_iter().next() {
        return Err(err(loc, message));
    }
    Ok(Spec {
        path: path.to_path_buf(),
        lab: raw.lab,
        programs: raw.programs,
        scenarios: raw.scenarios.into_iter().map(|s| s.value).collect(),
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
    if let Err(e) = serde_saphyr::from_str::<Step>(&format!("{word}: {{}}")) {
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

/// serde-saphyr's text carries its own location prefix/suffix; keep the words.
fn clean_message(text: &str) -> String {
    let first = text.lines().next().unwrap_or(text).trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    if let Some(key) = first.strip_prefix("duplicate mapping key: ") {
        let key = key.split(',').next().unwrap_or(key);
        return format!("expected each key once in a map; `{key}` appears twice");
    }
    match first.rfind(" at line ") {
        Some(i) => first[..i].to_string(),
        None => first.to_string(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Connection,
    Group,
    Listener,
}

#[derive(Default, Clone)]
struct Scope {
    names: HashMap<String, Kind>,
}

struct Checker<'a> {
    errors: Vec<(Option<Location>, String)>,
    programs: &'a BTreeMap<String, super::Program>,
}

fn loc_of(name: &Name, step: Location) -> Location {
    if name.referenced == Location::UNKNOWN {
        step
    } else {
        name.referenced
    }
}

impl Checker<'_> {
    fn fail(&mut self, at: Location, message: String) {
        self.errors.push((Some(at), message));
    }

    fn program(&mut self, name: &Name, step: Location) {
        if !self.programs.contains_key(&name.value) {
            let known: Vec<_> = self.programs.keys().map(|k| format!("`{k}`")).collect();
            self.fail(
                loc_of(name, step),
                format!(
                    "expected a program of this spec ({}), found `{}`",
                    known.join(", "),
                    name.value
                ),
            );
        }
    }

    fn declare(&mut self, scope: &mut Scope, name: &Name, kind: Kind, step: Location) {
        if name.value.is_empty() || name.value.contains(char::is_whitespace) {
            self.fail(
                loc_of(name, step),
                format!("expected a name without spaces, found `{}`", name.value),
            );
        }
        if self.programs.contains_key(&name.value) {
            self.fail(
                loc_of(name, step),
                format!("expected a new name; `{}` is a program", name.value),
            );
        }
        scope.names.insert(name.value.clone(), kind);
    }

    /// A connection step's `on`: inside `each`, absent or the group's name.
    fn connection(&mut self, scope: &Scope, on: &Option<Name>, step: Location, each: Option<&str>) {
        match (on, each) {
            (None, Some(_)) => {}
            (None, None) => self.fail(step, "expected `on: <connection>`".into()),
            (Some(n), Some(group)) if n.value == group => {}
            (Some(n), Some(group)) => self.fail(
                loc_of(n, step),
                format!(
                    "expected `{group}` (the group this `each` runs over) or no `on`, found `{}`",
                    n.value
                ),
            ),
            (Some(n), None) => match scope.names.get(&n.value) {
                Some(Kind::Connection) => {}
                Some(Kind::Group) => self.fail(
                    loc_of(n, step),
                    format!(
                        "`{}` is a group of connections: use `each: {{ connections: {}, steps: [...] }}`",
                        n.value, n.value
                    ),
                ),
                Some(Kind::Listener) => self.fail(
                    loc_of(n, step),
                    format!("`{}` is a listener: `accept` a connection on it first", n.value),
                ),
                None => {
                    let known: Vec<_> = scope
                        .names
                        .iter()
                        .filter(|(_, k)| **k == Kind::Connection)
                        .map(|(n, _)| format!("`{n}`"))
                        .collect();
                    let known = if known.is_empty() {
                        "none yet".to_string()
                    } else {
                        known.join(", ")
                    };
                    self.fail(
                        loc_of(n, step),
                        format!(
                            "expected a connection opened by an earlier `connect` or `accept` ({known}), found `{}`",
                            n.value
                        ),
                    )
                }
            },
        }
    }

    fn steps(&mut self, steps: &[Spanned<Step>], scope: &mut Scope, each: Option<&str>) {
        for step in steps {
            self.step(&step.value, step.referenced, scope, each);
        }
    }

    fn step(&mut self, step: &Step, at: Location, scope: &mut Scope, each: Option<&str>) {
        let per_connection = matches!(
            step,
            Step::Send(_)
                | Step::Expect(_)
                | Step::Echo(_)
                | Step::ExpectEof(_)
                | Step::ExpectReset(_)
                | Step::Shutdown(_)
                | Step::Close(_)
                | Step::Abort(_)
                | Step::ReadSlowly(_)
        );
        if each.is_some() && !per_connection {
            self.fail(
                at,
                format!("expected a connection step inside `each` (send, expect, echo, expect_eof, expect_reset, shutdown, close, abort, read_slowly), found `{}`", step.keyword()),
            );
            return;
        }
        match step {
            Step::Start(s) | Step::Restart(s) => {
                self.program(&s.program, at);
            }
            Step::Stop(s) => self.program(&s.program, at),
            Step::Kill(p) | Step::ExpectRunning(p) | Step::FdBaseline(p) | Step::MemoryBaseline(p) => {
                self.program(&p.program, at)
            }
            Step::Signal(s) => self.program(&s.program, at),
            Step::ExpectExit(e) => {
                self.program(&e.program, at);
                if e.status.is_some() && e.signal.is_some() {
                    self.fail(at, "expected either `status` or `signal`, not both".into());
                }
            }
            Step::ExpectOutput(o) => {
                self.program(&o.program, at);
                let matchers = [
                    o.equals.is_some(),
                    o.contains.is_some(),
                    o.regex.is_some(),
                    o.nonempty.is_some(),
                    o.empty.is_some(),
                ]
                .iter()
                .filter(|b| **b)
                .count();
                if matchers > 1 || (matchers == 0 && o.max_lines.is_none()) {
                    self.fail(at, "expected exactly one of `equals`, `contains`, `regex`, `nonempty`, `empty` (and optionally `max_lines`)".into());
                }
                if let Some(r) = &o.regex {
                    if let Err(e) = regex::bytes::Regex::new(r) {
                        self.fail(at, format!("expected a valid regular expression: {e}"));
                    }
                }
            }
            Step::Connect(c) => {
                if c.count == Some(0) {
                    self.fail(at, "expected a `count` of at least 1".into());
                }
                let kind = if c.count.is_some() {
                    Kind::Group
                } else {
                    Kind::Connection
                };
                self.declare(scope, &c.name, kind, at);
            }
            Step::Listen(l) => self.declare(scope, &l.name, Kind::Listener, at),
            Step::Accept(a) => {
                if scope.names.get(&a.on.value) != Some(&Kind::Listener) {
                    self.fail(
                        loc_of(&a.on, at),
                        format!(
                            "expected a listener opened by an earlier `listen`, found `{}`",
                            a.on.value
                        ),
                    );
                }
                self.declare(scope, &a.name, Kind::Connection, at);
            }
            Step::Send(s) => {
                self.connection(scope, &s.on, at, each);
                match payload_of(&s.text, &s.hex, &s.generate, &s.then) {
                    Ok(Some(_)) => {}
                    Ok(None) => self.fail(at, "expected what to send: `text`, `hex` or `generate`".into()),
                    Err(e) => self.fail(at, format!("expected {e}")),
                }
                if s.chunk.is_some() && s.sizes.is_some() {
                    self.fail(at, "expected either `chunk` or `sizes`, not both".into());
                }
                if s.chunk.map(|c| c.0) == Some(0) {
                    self.fail(at, "expected a `chunk` of at least 1 byte".into());
                }
            }
            Step::Expect(e) => {
                self.connection(scope, &e.on, at, each);
                let exact = match payload_of(&e.text, &e.hex, &e.generate, &e.then) {
                    Ok(p) => p.is_some(),
                    Err(m) => {
                        self.fail(at, format!("expected {m}"));
                        true
                    }
                };
                let count = [
                    exact,
                    e.prefix.is_some(),
                    e.contains.is_some(),
                    e.regex.is_some(),
                    e.echo == Some(true),
                    e.size.is_some(),
                ]
                .iter()
                .filter(|b| **b)
                .count();
                if count != 1 {
                    self.fail(at, "expected exactly one of `text`/`hex`/`generate`, `prefix`, `contains`, `regex`, `echo: true`, `size`".into());
                }
                if let Some(r) = &e.regex {
                    if let Err(err) = regex::bytes::Regex::new(r) {
                        self.fail(at, format!("expected a valid regular expression: {err}"));
                    }
                }
            }
            Step::Echo(e) => {
                self.connection(scope, &e.on, at, each);
                match payload_of(&e.text, &e.hex, &e.generate, &e.then) {
                    Ok(Some(_)) => {}
                    Ok(None) => self.fail(
                        at,
                        "expected what the program sends: `text`, `hex` or `generate`".into(),
                    ),
                    Err(m) => self.fail(at, format!("expected {m}")),
                }
            }
            Step::ExpectEof(c) | Step::ExpectReset(c) | Step::Shutdown(c) | Step::Close(c) | Step::Abort(c) => {
                self.connection(scope, &c.on, at, each)
            }
            Step::ReadSlowly(r) => {
                self.connection(scope, &r.on, at, each);
                if r.chunk.0 == 0 {
                    self.fail(at, "expected a `chunk` of at least 1 byte".into());
                }
            }
            Step::Each(e) => {
                if scope.names.get(&e.connections.value) != Some(&Kind::Group) {
                    self.fail(
                        loc_of(&e.connections, at),
                        format!(
                            "expected a group opened by `connect` with `count`, found `{}`",
                            e.connections.value
                        ),
                    );
                    return;
                }
                let mut inner = scope.clone();
                let group = e.connections.value.clone();
                self.steps(&e.steps, &mut inner, Some(&group));
            }
            Step::Repeat(r) => {
                if r.times == 0 {
                    self.fail(at, "expected `times` of at least 1".into());
                }
                if r.steps.is_empty() {
                    self.fail(at, "expected at least one step to repeat".into());
                }
                let mut inner = scope.clone();
                self.steps(&r.steps, &mut inner, None);
            }
            Step::ExpectFds(f) => self.program(&f.program, at),
            Step::ExpectMemory(m) => self.program(&m.program, at),
            Step::ExpectReleased(r) => {
                self.program(&r.program, at);
                if scope.names.get(&r.connection.value) != Some(&Kind::Connection) {
                    self.fail(
                        loc_of(&r.connection, at),
                        format!(
                            "expected a connection opened by an earlier `connect`, found `{}`",
                            r.connection.value
                        ),
                    );
                }
            }
            Step::ExpectZombies(z) => self.program(&z.program, at),
            Step::ExpectIdle(i) => {
                self.program(&i.program, at);
                if i.max_cpu_percent.is_none() && i.max_processes.is_none() && i.max_rss_growth.is_none() {
                    self.fail(
                        at,
                        "expected at least one of `max_cpu_percent`, `max_processes`, `max_rss_growth`".into(),
                    );
                }
            }
        }
    }
}
