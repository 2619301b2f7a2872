//! The documentation stays true: the step reference (`docs/reference/steps.md`)
//! is what `harness::lang::steps_markdown()` writes from the doc comments
//! today, and every relative link in the repository's Markdown leads to a
//! file, and to a heading of it when it names one.

mod support;

use regex::Regex;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use support::root;

const STEPS_MD: &str = "docs/reference/steps.md";

/// With `SOCKGRADE_BLESS=1` the file is written instead of compared.
#[test]
fn step_reference_is_current() {
    let generated = harness::lang::steps_markdown();
    let path = root().join(STEPS_MD);
    if std::env::var_os("SOCKGRADE_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    if on_disk != generated {
        let first = on_disk
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(on_disk.lines().count().min(generated.lines().count()));
        panic!(
            "{STEPS_MD} is not what the doc comments say now (first difference at line {}: {:?} should be {:?}).\n\
             It is generated, not edited: run `SOCKGRADE_BLESS=1 cargo test -p harness --test reference_doc` \
             and commit the file.",
            first + 1,
            on_disk.lines().nth(first).unwrap_or(""),
            generated.lines().nth(first).unwrap_or(""),
        );
    }
}

/// Every keyword's family (the module its struct is in) is one the
/// reference says what it is about.
#[test]
fn every_step_has_a_family() {
    let generated = harness::lang::steps_markdown();
    assert!(
        !generated.contains(&format!("## {}", harness::lang::STEPS_WITHOUT_FAMILY)),
        "a step keyword's family (its module in harness/src/lang/) has no entry in FAMILIES in harness/src/lang/reference.rs"
    );
}

/// Every relative link of every Markdown file (README.md, docs/, bench/,
/// reference/, specs/, fixtures/) resolves: the file exists, and the
/// `#fragment` is a heading of it.
#[test]
fn relative_links_resolve() {
    let files = markdown_files(&root());
    assert!(files.iter().any(|f| f.ends_with("README.md")), "{files:?}");
    let link = Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    let mut broken = Vec::new();
    for file in &files {
        let text = prose(&std::fs::read_to_string(file).unwrap());
        for target in link.captures_iter(&text).map(|c| c[1].to_string()) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let resolved = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(path)
            };
            let name = file.strip_prefix(root()).unwrap().display();
            if !resolved.exists() {
                broken.push(format!("{name}: {target} (no such file)"));
            } else if !fragment.is_empty()
                && resolved.extension().is_some_and(|e| e == "md")
                && !anchors(&std::fs::read_to_string(&resolved).unwrap()).contains(fragment)
            {
                broken.push(format!("{name}: {target} (no such heading)"));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// The repository's Markdown files, without build output and hidden folders.
fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            files.extend(markdown_files(&path));
        } else if name.ends_with(".md") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The text outside code: fenced blocks and `code spans` hold no links.
fn prose(markdown: &str) -> String {
    let span = Regex::new(r"`[^`\n]*`").unwrap();
    let mut in_fence = false;
    let mut out = String::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence {
            out.push_str(&span.replace_all(line, ""));
            out.push('\n');
        }
    }
    out
}

/// The anchors GitHub gives a file's headings (`heading_anchor`); a
/// repeated one gets `-1`, `-2`...
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut in_fence = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        }
        let Some(heading) = line.strip_prefix('#').filter(|_| !in_fence) else {
            continue;
        };
        let slug = harness::lang::heading_anchor(heading.trim_start_matches('#').trim());
        let mut unique = slug.clone();
        let mut n = 0;
        while seen.contains(&unique) {
            n += 1;
            unique = format!("{slug}-{n}");
        }
        seen.insert(unique);
    }
    seen
}
