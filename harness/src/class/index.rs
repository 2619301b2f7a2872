//! `OUT/index.html`: the class at a glance, beside `summary.csv` and made
//! from the same reports, read once (`rows::write`): the score
//! distribution; for each clause how many submissions failed it, each
//! linked to their reports; the submissions that did not build, counted
//! apart (they fail every scenario for one reason, which would hide the
//! clauses a class really fails); and a grid of submissions by clauses.
//! Self-contained
//! like the per-submission reports (no script, nothing fetched), and every
//! name escaped: a submission's folder name is the student's.

use super::rows::Report;
use super::{ERROR_FILE, HTML_FILE, HUMAN_FILE};
use crate::report::html::esc;
use std::collections::BTreeMap;

pub const FILE: &str = "index.html";

/// The page, for the submissions in name order (`None`: not graded).
pub(super) fn render(rows: &[(String, Option<Report>)], has_html: impl Fn(&str) -> bool) -> String {
    let graded: Vec<(&str, &Report)> = rows
        .iter()
        .filter_map(|(n, r)| r.as_ref().map(|r| (n.as_str(), r)))
        .collect();
    let lab = graded.first().map(|(_, r)| r.lab.as_str()).unwrap_or("");
    let link = |name: &str| {
        let file = if has_html(name) { HTML_FILE } else { HUMAN_FILE };
        format!("<a href=\"{}/{file}\">{}</a>", esc(&url_segment(name)), esc(name))
    };
    let mut out = String::new();
    out.push_str(&format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <title>{} — the class</title>\n<style>{STYLE}</style></head><body>\n<h1>{} — {} submission(s)</h1>\n",
        esc(lab),
        esc(lab),
        rows.len()
    ));

    // The distribution: one bar per score, as wide as its share.
    out.push_str("<h2>Scores</h2>\n<table class=\"bars\">\n");
    let mut by_score: BTreeMap<u32, usize> = BTreeMap::new();
    for (_, r) in &graded {
        *by_score.entry(r.score).or_default() += 1;
    }
    let most = by_score.values().copied().max().unwrap_or(1);
    for (score, count) in by_score.iter().rev() {
        let max = graded.first().map(|(_, r)| r.max_score).unwrap_or(0);
        out.push_str(&format!(
            "<tr><th>{score}/{max}</th><td><span class=\"bar\" style=\"width:{}%\"></span> {count}</td></tr>\n",
            count * 100 / most
        ));
    }
    out.push_str("</table>\n");

    // Clauses, most failed first: what to go over in class. Among the
    // submissions that built: one that did not is counted below.
    let built: Vec<(&str, &Report)> = graded.iter().copied().filter(|(_, r)| r.built()).collect();
    let unbuilt: Vec<&str> = graded.iter().filter(|(_, r)| !r.built()).map(|(n, _)| *n).collect();
    let mut by_clause: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (name, r) in &built {
        for clause in r.failed_clauses() {
            by_clause.entry(clause).or_default().push(name);
        }
    }
    let mut clauses: Vec<(String, Vec<&str>)> = by_clause.into_iter().collect();
    clauses.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
    out.push_str("<h2>Clauses failed</h2>\n<table>\n<tr><th>clause</th><th>submissions</th><th></th></tr>\n");
    for (clause, names) in &clauses {
        let links: Vec<String> = names.iter().map(|n| link(n)).collect();
        out.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>\n",
            esc(clause),
            names.len(),
            links.join(", ")
        ));
    }
    out.push_str("</table>\n");
    if !unbuilt.is_empty() {
        let links: Vec<String> = unbuilt.iter().map(|n| link(n)).collect();
        out.push_str(&format!(
            "<p>Did not build ({}), and not counted above: {}</p>\n",
            unbuilt.len(),
            links.join(", ")
        ));
    }
    out.push_str(&grid(&graded, &link));

    out.push_str("<h2>Submissions</h2>\n<table>\n<tr><th>submission</th><th>score</th></tr>\n");
    for (name, report) in rows {
        let score = match report {
            Some(r) => format!("{}/{}", r.score, r.max_score),
            None => format!(
                "not graded (<a href=\"{}/{ERROR_FILE}\">why</a>)",
                esc(&url_segment(name))
            ),
        };
        out.push_str(&format!("<tr><td>{}</td><td>{score}</td></tr>\n", link(name)));
    }
    out.push_str("</table>\n</body></html>\n");
    out
}

/// Submissions by clauses: a cross where the submission failed the clause
/// (a failure's attribution, as in the table above), a dot where it passed,
/// `build` across a submission that did not build. Clause ids are the
/// spec's, in its order; each header is the clause's last part, the whole id
/// in its title.
fn grid(graded: &[(&str, &Report)], link: &impl Fn(&str) -> String) -> String {
    let Some((_, first)) = graded.first() else {
        return String::new();
    };
    let clauses = first.clauses();
    let mut out = String::from("<h2>Submissions by clause</h2>\n<table class=\"grid\">\n<tr><th>submission</th>");
    for clause in &clauses {
        let short = clause.rsplit('.').next().unwrap_or(clause);
        out.push_str(&format!("<th title=\"{}\">{}</th>", esc(clause), esc(short)));
    }
    out.push_str("</tr>\n");
    for (name, report) in graded {
        out.push_str(&format!("<tr><td>{}</td>", link(name)));
        if !report.built() {
            out.push_str(&format!("<td colspan=\"{}\">build</td></tr>\n", clauses.len().max(1)));
            continue;
        }
        let failed = report.failed_clauses();
        for clause in &clauses {
            let cell = if failed.contains(clause) {
                "<td class=\"x\">✗</td>"
            } else {
                "<td>·</td>"
            };
            out.push_str(cell);
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

/// A folder name as one segment of a relative URL: everything but letters,
/// digits and `-._~` percent-encoded, so `#`, `?`, `/` and spaces can't
/// change where a link points.
fn url_segment(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;max-width:60em}
table{border-collapse:collapse;margin-bottom:1.5em}td,th{padding:.2em .6em;text-align:left;border-bottom:1px solid #ddd}
.bars th{white-space:nowrap}.bar{display:inline-block;height:.9em;background:#4a7fd4}
.bars td{width:30em}code{font-size:.95em}
.grid td,.grid th{text-align:center;font-size:.9em}.grid td:first-child{text-align:left}.grid .x{color:#b00;font-weight:bold}";

#[cfg(test)]
mod tests {
    use super::url_segment;

    #[test]
    fn a_folder_name_is_one_harmless_url_segment() {
        assert_eq!(url_segment("alice"), "alice");
        assert_eq!(url_segment("a b#c?d/e"), "a%20b%23c%3Fd%2Fe");
        assert_eq!(url_segment("<img src=x>"), "%3Cimg%20src%3Dx%3E");
    }
}
