//! `sockgrade list SPEC`: what a spec grades, read from the spec alone (it
//! runs nothing): each scenario with its points, visibility and clause ids,
//! then the totals, so an instructor sees what a submission can earn and
//! what students will be shown before anything runs.

use crate::lang::{Spec, Visibility};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Serialize)]
struct Listing<'a> {
    lab: &'a str,
    spec: String,
    scenarios: Vec<Row<'a>>,
    /// Per program, the clauses its preconditions blame: a scenario whose
    /// check was never reached fails for one of these instead of its own.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    preconditions: BTreeMap<&'a str, BTreeMap<&'static str, &'a str>>,
    totals: Totals,
}

#[derive(Serialize)]
struct Row<'a> {
    /// 1-based, in spec order: the `number` Gradescope shows.
    number: usize,
    name: &'a str,
    points: u32,
    visibility: Visibility,
    clauses: &'a [String],
}

#[derive(Serialize)]
struct Totals {
    scenarios: usize,
    points: u32,
    /// Points per visibility, only the visibilities that occur: what a
    /// student sees before the due date is `visible`.
    points_by_visibility: BTreeMap<&'static str, u32>,
    /// Distinct clause ids, and how many scenarios check each.
    clauses: BTreeMap<String, usize>,
}

fn visibility_name(v: Visibility) -> &'static str {
    match v {
        Visibility::Visible => "visible",
        Visibility::Hidden => "hidden",
        Visibility::AfterDueDate => "after_due_date",
        Visibility::AfterPublished => "after_published",
    }
}

fn listing(spec: &Spec) -> Listing<'_> {
    let scenarios: Vec<Row> = spec
        .scenarios
        .iter()
        .enumerate()
        .map(|(i, s)| Row {
            number: i + 1,
            name: &s.name,
            points: s.points,
            visibility: s.visibility,
            clauses: &s.tags,
        })
        .collect();
    let mut points_by_visibility = BTreeMap::new();
    let mut clauses = BTreeMap::new();
    for row in &scenarios {
        *points_by_visibility.entry(visibility_name(row.visibility)).or_insert(0) += row.points;
        for c in row.clauses {
            *clauses.entry(c.clone()).or_insert(0) += 1;
        }
    }
    let preconditions = spec
        .programs
        .iter()
        .map(|(name, p)| {
            let c = &p.preconditions;
            let blamed: BTreeMap<&'static str, &str> =
                [("listening", &c.listening), ("keeps_connections", &c.keeps_connections)]
                    .into_iter()
                    .filter_map(|(what, clause)| clause.as_deref().map(|c| (what, c)))
                    .collect();
            (name.as_str(), blamed)
        })
        .filter(|(_, blamed)| !blamed.is_empty())
        .collect();
    Listing {
        lab: &spec.lab,
        preconditions,
        spec: spec.path.display().to_string(),
        totals: Totals {
            scenarios: scenarios.len(),
            points: scenarios.iter().map(|r| r.points).sum(),
            points_by_visibility,
            clauses,
        },
        scenarios,
    }
}

pub fn json(spec: &Spec) -> String {
    serde_json::to_string_pretty(&listing(spec)).expect("plain data serialises") + "\n"
}

/// A table: number, points, visibility, name, clauses; then the totals.
pub fn human(spec: &Spec) -> String {
    let l = listing(spec);
    let name_width = l
        .scenarios
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(8);
    let mut out = format!("{} ({})\n\n", l.lab, l.spec);
    out.push_str(&format!(
        "{:>3}  {:>6}  {:<15}  {:<name_width$}  clauses\n",
        "#", "points", "visibility", "scenario"
    ));
    for r in &l.scenarios {
        out.push_str(
            format!(
                "{:>3}  {:>6}  {:<15}  {:<name_width$}  {}",
                r.number,
                r.points,
                visibility_name(r.visibility),
                r.name,
                r.clauses.join(", ")
            )
            .trim_end(),
        );
        out.push('\n');
    }
    for (program, blamed) in &l.preconditions {
        let list: Vec<String> = blamed
            .iter()
            .map(|(what, clause)| format!("{what} -> {clause}"))
            .collect();
        out.push_str(&format!("\npreconditions of {program}: {}\n", list.join(", ")));
    }
    let t = &l.totals;
    let by: Vec<String> = t.points_by_visibility.iter().map(|(v, p)| format!("{p} {v}")).collect();
    out.push_str(&format!(
        "\ntotal: {} points in {} scenarios ({}); {} clauses\n",
        t.points,
        t.scenarios,
        by.join(", "),
        t.clauses.len()
    ));
    out
}
