//! `OUT/summary.csv`: one row per submission (name, score, max, then each
//! scenario's points), and `OUT/index.html` beside it (`super::index`),
//! rebuilt from the submissions' folders alone, so that
//! the shards of a partitioned class, copied into one folder, make one
//! summary (`sockgrade summary OUT`).

use super::{ERROR_FILE, REPORT_FILE};
use serde::Deserialize;
use std::path::Path;

pub const FILE: &str = "summary.csv";

/// The little of a JSON report the summary reads.
#[derive(Deserialize)]
struct Report {
    score: u32,
    max_score: u32,
    scenarios: Vec<Scenario>,
}

#[derive(Deserialize)]
struct Scenario {
    name: String,
    score: u32,
}

/// One submission's row: its report, or why it has none.
enum Row {
    Graded(Report),
    NotGraded,
}

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
    let mut rows = Vec::new();
    let mut pages = Vec::new();
    let mut not_graded = Vec::new();
    for name in names {
        let text = std::fs::read_to_string(out.join(&name).join(REPORT_FILE)).ok();
        let report = text.as_deref().and_then(|t| serde_json::from_str::<Report>(t).ok());
        let page = text
            .as_deref()
            .and_then(|t| serde_json::from_str::<super::index::Report>(t).ok());
        pages.push((name.clone(), page));
        match report {
            Some(r) => rows.push((name, Row::Graded(r))),
            None => {
                not_graded.push(name.clone());
                rows.push((name, Row::NotGraded));
            }
        }
    }
    let text = csv(&rows);
    super::write_atomically(&out.join(FILE), &text)
        .map_err(|e| format!("cannot write {}: {e}", out.join(FILE).display()))?;
    let index = super::index::render(&pages, |name| out.join(name).join(super::HTML_FILE).is_file());
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
        if let Row::Graded(r) = row {
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
    line(&mut out, header.iter().map(|h| h.to_string()));
    for (name, row) in rows {
        let cells: Vec<String> = match row {
            Row::Graded(r) => [name.clone(), r.score.to_string(), r.max_score.to_string()]
                .into_iter()
                .chain(columns.iter().map(|c| {
                    r.scenarios
                        .iter()
                        .find(|s| s.name == *c)
                        .map(|s| s.score.to_string())
                        .unwrap_or_default()
                }))
                .collect(),
            Row::NotGraded => std::iter::once(name.clone())
                .chain(std::iter::repeat_n(String::new(), 2 + columns.len()))
                .collect(),
        };
        line(&mut out, cells.into_iter());
    }
    out
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
        Row::Graded(Report {
            score: points.iter().map(|(_, p)| p).sum(),
            max_score: 10,
            scenarios: points
                .iter()
                .map(|(name, score)| Scenario {
                    name: name.to_string(),
                    score: *score,
                })
                .collect(),
        })
    }

    #[test]
    fn fields_are_quoted_and_missing_cells_left_empty() {
        let rows = vec![
            ("a, \"b\"".to_string(), graded(&[("one", 1), ("two, three", 2)])),
            ("c".to_string(), graded(&[("one", 0)])),
            ("d".to_string(), Row::NotGraded),
        ];
        assert_eq!(
            csv(&rows),
            "submission,score,max_score,one,\"two, three\"\n\
             \"a, \"\"b\"\"\",3,10,1,2\n\
             c,0,10,0,\n\
             d,,,,\n"
        );
    }
}
