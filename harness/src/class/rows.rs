//! A class's rows: every submission's report, read once from the folders
//! of OUT alone (so that the shards of a partitioned class, copied into one
//! folder, make one class: `sockgrade summary OUT`), then rendered twice:
//! `summary.csv` (`super::summary`) and `index.html` (`super::index`).

use super::{ERROR_FILE, REPORT_FILE};
use serde::Deserialize;
use std::path::Path;

/// The little of a JSON report the summary and the index read.
#[derive(Deserialize)]
pub(super) struct Report {
    #[serde(default)]
    pub lab: String,
    pub score: u32,
    pub max_score: u32,
    pub scenarios: Vec<Scenario>,
    #[serde(default)]
    pub build: Option<Build>,
}

#[derive(Deserialize)]
pub(super) struct Build {
    #[serde(default)]
    pub status: String,
}

#[derive(Deserialize)]
pub(super) struct Scenario {
    pub name: String,
    pub score: u32,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub failure: Option<Failure>,
}

#[derive(Deserialize)]
pub(super) struct Failure {
    #[serde(default)]
    pub clauses: Vec<String>,
}

impl Report {
    /// Whether the submission built (or had nothing to build). One that did
    /// not failed every scenario for that one reason, which says nothing of
    /// the clauses: the class page counts it apart.
    pub fn built(&self) -> bool {
        !matches!(
            self.build.as_ref().map(|b| b.status.as_str()),
            Some("failed" | "timeout")
        )
    }

    /// Every clause the spec's scenarios are tagged with, in the order they
    /// first appear.
    pub fn clauses(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for tag in self.scenarios.iter().flat_map(|s| &s.tags) {
            if !out.contains(tag) {
                out.push(tag.clone());
            }
        }
        out
    }

    /// The clauses this submission failed: each failure's attribution (a
    /// precondition's clause where one failed first), else its tags.
    pub fn failed_clauses(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .scenarios
            .iter()
            .filter(|s| s.status != "passed")
            .flat_map(|s| match &s.failure {
                Some(f) if !f.clauses.is_empty() => f.clauses.clone(),
                _ => s.tags.clone(),
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// One submission's row: its report, or `None` when it has none.
pub(super) type Row = Option<Report>;

/// What `write` found: how many rows, and the folders it could not read.
pub struct Written {
    pub rows: usize,
    pub not_graded: Vec<String>,
}

/// Rebuilds `out/summary.csv` from every folder of `out` that holds a
/// report (or the error that kept one from being made), in name order.
pub fn write(out: &Path) -> Result<Written, String> {
    let mut names: Vec<String> = std::fs::read_dir(out)
        .map_err(|e| format!("cannot read {}: {e}", out.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join(REPORT_FILE).is_file() || e.path().join(ERROR_FILE).is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut rows: Vec<(String, Row)> = Vec::new();
    let mut not_graded = Vec::new();
    for name in names {
        let report = std::fs::read_to_string(out.join(&name).join(REPORT_FILE))
            .ok()
            .and_then(|text| serde_json::from_str::<Report>(&text).ok());
        if report.is_none() {
            not_graded.push(name.clone());
        }
        rows.push((name, report));
    }
    let text = super::summary::csv(&rows);
    super::write_atomically(&out.join(super::summary::FILE), &text)
        .map_err(|e| format!("cannot write {}: {e}", out.join(super::summary::FILE).display()))?;
    let index = super::index::render(&rows, |name| out.join(name).join(super::HTML_FILE).is_file());
    super::write_atomically(&out.join(super::index::FILE), &index)
        .map_err(|e| format!("cannot write {}: {e}", out.join(super::index::FILE).display()))?;
    Ok(Written {
        rows: rows.len(),
        not_graded,
    })
}
