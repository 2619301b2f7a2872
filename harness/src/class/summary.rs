//! `OUT/summary.csv`: one row per submission (name, score, max, then each
//! scenario's points), rendered from the rows `super::rows` read.

use super::rows::Row;

pub const FILE: &str = "summary.csv";

/// The columns are the scenarios in the order they first appear (every
/// report of one spec has them in spec order); a submission graded without
/// one (`--only`) leaves its cell empty, as does one that was not graded.
pub(super) fn csv(rows: &[(String, Row)]) -> String {
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
    use crate::class::rows::{Report, Scenario};

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
