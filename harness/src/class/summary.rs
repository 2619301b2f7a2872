//! `OUT/summary.csv`: one row per submission (name, score, max, then each
//! scenario's points), and `OUT/index.html` beside it (`super::index`),
//! rebuilt from the submissions' folders alone, so that
//! the shards of a partitioned class, copied into one folder, make one
//! summary (`sockgrade summary OUT`).

use super::{ERROR_FILE, REPORT_FILE};
use serde::Deserialize;
use std::path::Path;

pub const FILE: &str = "summary.csv";

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
type Row = Option<Report>;

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
    let text = csv(&rows);
    super::write_atomically(&out.join(FILE), &text)
        .map_err(|e| format!("cannot write {}: {e}", out.join(FILE).display()))?;
    let index = super::index::render(&rows, |name| out.join(name).join(super::HTML_FILE).is_file());
    super::write_atomically(&out.join(super::index::FILE), &index)
        .map_err(|e| format!("cannot write {}: {e}", out.join(super::index::FILE).display()))?;
    Ok(Written {
        rows: rows.len(),
        not_graded,
    })
}

/// The columns are the scenarios in the order they first appear (every
/// report of one spec has them in spec order); a submission graded without
/// one (`--only`) leaves its cell empty, as does one that was not graded.
fn csv(rows: &[(String, Row)]) -> String {
    let mut columns: Vec<&str> = Vec::new();
    for (_, row) in rows {
        if let Some(r) = row {
            for s in &r.scenarios {
                if !columns.contains(&s.name.as_str()) {
                    columns.push(&s.name);
                }
            }
        }
    }
    let mut out = String::new();
    let header: Vec<&str> = ["submission", "score", "max_score"]
        .into_iter()
        .chain(columns.iter().copied())
        .collect();
    line(&mut out, header.iter().map(|h| text_cell(h)));
    for (name, row) in rows {
        let cells: Vec<String> = match row {
            Some(r) => [text_cell(name), r.score.to_string(), r.max_score.to_string()]
                .into_iter()
                .chain(columns.iter().map(|c| {
                    r.scenarios
                        .iter()
                        .find(|s| s.name == *c)
                        .map(|s| s.score.to_string())
                        .unwrap_or_default()
                }))
                .collect(),
            None => std::iter::once(text_cell(name))
                .chain(std::iter::repeat_n(String::new(), 2 + columns.len()))
                .collect(),
        };
        line(&mut out, cells.into_iter());
    }
    out
}

/// A text cell (a submission's name, which is its student's folder name, or
/// a column's): one that a spreadsheet would run as a formula, because it
/// begins with `=`, `+`, `-`, `@`, a tab or a carriage return, is prefixed
/// with `'` (OWASP's advice on CSV injection), which shows it as text.
/// Numbers are never passed here: they stay numbers.
fn text_cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

/// One CSV record (RFC 4180 quoting, Unix line ends): a field with a comma, a quote or a line
/// break is quoted, its quotes doubled.
fn line(out: &mut String, cells: impl Iterator<Item = String>) {
    let cells: Vec<String> = cells
        .map(|c| {
            if c.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c
            }
        })
        .collect();
    out.push_str(&cells.join(","));
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graded(points: &[(&str, u32)]) -> Row {
        Some(Report {
            lab: "lab".to_string(),
            score: points.iter().map(|(_, p)| p).sum(),
            max_score: 10,
            scenarios: points
                .iter()
                .map(|(name, score)| Scenario {
                    name: name.to_string(),
                    score: *score,
                    status: "passed".to_string(),
                    tags: Vec::new(),
                    failure: None,
                })
                .collect(),
            build: None,
        })
    }

    #[test]
    fn fields_are_quoted_and_missing_cells_left_empty() {
        let rows = vec![
            ("a, \"b\"".to_string(), graded(&[("one", 1), ("two, three", 2)])),
            ("c".to_string(), graded(&[("one", 0)])),
            ("d".to_string(), None),
        ];
        assert_eq!(
            csv(&rows),
            "submission,score,max_score,one,\"two, three\"\n\
             \"a, \"\"b\"\"\",3,10,1,2\n\
             c,0,10,0,\n\
             d,,,,\n"
        );
    }

    #[test]
    fn text_cells_that_spreadsheets_would_run_are_neutralised() {
        let rows = vec![
            (
                "=HYPERLINK(\"http://x\")".to_string(),
                graded(&[("-1 is not a score", 1), ("@SUM(A1)", 2), ("plain", 3)]),
            ),
            ("+1".to_string(), graded(&[("-1 is not a score", 0)])),
            ("\tbob".to_string(), None),
            ("\r=1".to_string(), None),
            ("carol-=".to_string(), graded(&[("plain", 0)])),
        ];
        assert_eq!(
            csv(&rows),
            "submission,score,max_score,'-1 is not a score,'@SUM(A1),plain\n\
             \"'=HYPERLINK(\"\"http://x\"\")\",6,10,1,2,3\n\
             '+1,0,10,0,,\n\
             '\tbob,,,,,\n\
             \"'\r=1\",,,,,\n\
             carol-=,0,10,,,0\n"
        );
    }
}
