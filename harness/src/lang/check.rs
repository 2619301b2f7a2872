//! The checks that span steps: every name a step uses was declared (a program
//! of the spec, a connection, group or listener opened by an earlier step),
//! `each` holds only connection steps, scenario names are unique. A step's
//! own rules were checked as serde built it (see each family's file).

use super::{Keyword, Name, RawSpec, Step};
use serde_saphyr::{Location, Spanned};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The first error, with where it is (`None`: the spec as a whole).
/// `scenarios` are the spec's, lowered from `raw`.
pub(super) fn check(raw: &RawSpec, scenarios: &[Spanned<super::Scenario>]) -> Option<(Option<Location>, String)> {
    let mut checker = Checker {
        errors: Vec::new(),
        programs: &raw.programs,
        frames: raw.frames.as_ref(),
        docroot: raw.docroot.as_ref(),
    };
    if let Some(Err(why)) = raw.frames.as_ref().map(|f| f.check()) {
        checker.errors.push((None, why));
    }
    if let Some(Err(why)) = raw.docroot.as_ref().map(|d| d.check()) {
        checker.errors.push((None, why));
    }
    for (name, program) in &raw.programs {
        if program.command.is_empty() || program.command[0].trim().is_empty() {
            checker
                .errors
                .push((None, format!("expected program `{name}` to have a non-empty `command`")));
        }
    }
    let mut names = HashSet::new();
    for scenario in scenarios {
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
        checker.steps(&scenario.value.steps, &mut scope);
    }
    checker.errors.into_iter().next()
}

/// What a name declared in a scenario stands for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Connection,
    /// A group of this many connections, from `connect` with `count`.
    Group(usize),
    Listener,
    /// A datagram endpoint of the harness (`udp_open`, `udp_bind`, `join`,
    /// `multicast_sender`); `udp_open` with `count` declares `c#1`, ...
    Endpoint,
    /// A relay of the harness: named, but no step acts on it.
    Relay,
}

/// The names declared so far. `each` and `repeat` check their steps in a
/// copy: what they open is theirs.
#[derive(Default, Clone)]
pub struct Scope {
    pub(super) names: HashMap<String, Kind>,
    /// Programs with an `fd_baseline` / a `memory_baseline` before here.
    pub(super) fd_baselines: HashSet<String>,
    pub(super) memory_baselines: HashSet<String>,
    /// Listeners with a port of their own before here: what `{port:NAME}`
    /// may name.
    pub(super) own_ports: HashSet<String>,
    /// Inside a `repeat`: `{round}` has a value.
    pub(super) in_repeat: bool,
    /// Inside an `each`: the group it runs over.
    pub(super) each: Option<String>,
}

impl Scope {
    /// What `name` stands for: a member of a group (`g#3`) is a connection
    /// of its own, as `connect` named it.
    pub(super) fn kind(&self, name: &str) -> Option<Kind> {
        if let Some(kind) = self.names.get(name) {
            return Some(*kind);
        }
        let (_, count) = self.group_of(name)?;
        let member: usize = name.rsplit_once('#')?.1.parse().ok()?;
        (1..=count).contains(&member).then_some(Kind::Connection)
    }

    /// For `g#…` where `g` is a group: the group's name and size.
    fn group_of<'n>(&self, name: &'n str) -> Option<(&'n str, usize)> {
        let (group, _) = name.rsplit_once('#')?;
        match self.names.get(group) {
            Some(Kind::Group(count)) => Some((group, *count)),
            _ => None,
        }
    }
}

/// The rules that span steps, and the errors found so far. Each keyword's
/// `Keyword::check` asks it about the names it uses.
pub struct Checker<'a> {
    errors: Vec<(Option<Location>, String)>,
    pub(super) programs: &'a BTreeMap<String, super::Program>,
    frames: Option<&'a super::rpc::Frames>,
    pub(super) docroot: Option<&'a super::http::Docroot>,
}

/// The files a spec's `docroot` declares.
pub(super) fn raw_files(docroot: Option<&super::http::Docroot>) -> Vec<&str> {
    docroot
        .map(|d| d.files.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// Where a name was written, or the step's location for the shorthand form.
pub(super) fn loc_of(name: &Name, step: Location) -> Location {
    if name.referenced == Location::UNKNOWN {
        step
    } else {
        name.referenced
    }
}

impl Checker<'_> {
    pub(super) fn fail(&mut self, at: Location, message: String) {
        self.errors.push((Some(at), message));
    }

    /// A program of the spec that a baseline step (`baseline`, with its
    /// article) took before `keyword` compares with it.
    pub(super) fn program_with_baseline(
        &mut self,
        name: &Name,
        before: &std::collections::HashSet<String>,
        baseline: &str,
        keyword: &str,
        at: Location,
    ) {
        self.program(name, at);
        if !before.contains(&name.value) {
            let name = &name.value;
            self.fail(at, format!("expected {baseline}: {name}` before `{keyword}` on {name}"));
        }
    }

    /// Every `{port:NAME}` in `texts` names a listener with a port of its
    /// own declared before, and `{round}` is inside a `repeat`: else the
    /// program or the request would get the placeholder's text, and the
    /// student the blame.
    pub(super) fn known_placeholders<'t>(
        &mut self,
        scope: &Scope,
        texts: impl Iterator<Item = &'t String>,
        at: Location,
    ) {
        for text in texts {
            if text.contains("{round}") && !scope.in_repeat {
                self.fail(
                    at,
                    "expected `{round}` inside a `repeat` (it is the round's number)".into(),
                );
            }
            for (i, _) in text.match_indices("{port:") {
                let rest = &text[i + "{port:".len()..];
                let name = rest.split('}').next().unwrap_or_default();
                if !scope.own_ports.contains(name) {
                    self.fail(
                        at,
                        format!(
                            "expected `{{port:{name}}}` to name a listener with a port of its own opened before \
                             (`listen: {{ as: {name}, port: own }}`)"
                        ),
                    );
                }
            }
        }
    }

    /// A payload sent as written holds no placeholder of a port of the
    /// grader's own or of a round: the program would get the placeholder's
    /// text, and the student the blame.
    pub(super) fn not_filled(&mut self, payload: &super::values::Payload, why: &str, at: Location) {
        let texts = match &payload.source {
            super::values::PayloadSource::Text(t) => vec![t.as_str()],
            _ => vec![],
        };
        for text in texts.into_iter().chain(payload.then.as_deref()) {
            if text.contains("{port:") || text.contains("{round}") {
                self.fail(
                    at,
                    format!(
                        "expected no `{{port:NAME}}` or `{{round}}` here: {why}; write a request with `send_request`"
                    ),
                );
            }
        }
    }

    /// `name` is a listener opened by an earlier `listen`.
    pub(super) fn listener(&mut self, scope: &Scope, name: &Name, at: Location) {
        if scope.names.get(&name.value) != Some(&Kind::Listener) {
            self.fail(
                loc_of(name, at),
                format!(
                    "expected a listener opened by an earlier `listen`, found `{}`",
                    name.value
                ),
            );
        }
    }

    pub(super) fn program(&mut self, name: &Name, step: Location) {
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

    pub(super) fn declare(&mut self, scope: &mut Scope, name: &Name, kind: Kind, step: Location) {
        if name.value.is_empty() || name.value.contains(|c: char| c.is_whitespace() || c == '#') {
            self.fail(
                loc_of(name, step),
                format!(
                    "expected a name without spaces or `#` (`g#1` names a group's member), found `{}`",
                    name.value
                ),
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

    /// A witness step's program, and the connection it looks at (opened by
    /// an earlier step; a whole group too, where `groups` says so).
    pub(super) fn program_and_connection(
        &mut self,
        program: &Name,
        conn: &Name,
        groups: bool,
        scope: &Scope,
        at: Location,
    ) {
        self.program(program, at);
        let ok = match scope.kind(&conn.value) {
            Some(Kind::Connection) => true,
            Some(Kind::Group(_)) => groups,
            _ => false,
        };
        if !ok {
            let what = if groups {
                "a connection or a group"
            } else {
                "a connection"
            };
            self.fail(
                loc_of(conn, at),
                format!(
                    "expected {what} opened by an earlier `connect` or `accept`, found `{}`",
                    conn.value
                ),
            );
        }
    }

    /// The members of an `each`: its connection steps name no connection,
    /// or the group.
    pub(super) fn member(&mut self, scope: &Scope, on: Option<&Name>, step: Location) {
        if let (Some(n), Some(group)) = (on, &scope.each) {
            if &n.value != group {
                self.fail(
                    loc_of(n, step),
                    format!(
                        "expected `{group}` (the group this `each` runs over) or no `on`, found `{}`",
                        n.value
                    ),
                );
            }
        }
    }

    /// A connection step's `on`, at the top of a scenario: a connection
    /// opened before.
    pub(super) fn connection(&mut self, scope: &Scope, n: &Name, step: Location) {
        match scope.kind(&n.value) {
                Some(Kind::Connection) => {}
                Some(Kind::Group(_)) => self.fail(
                    loc_of(n, step),
                    format!(
                        "`{}` is a group of connections: use `each: {{ connections: {}, steps: [...] }}`, or name one member (`{}#1`)",
                        n.value, n.value, n.value
                    ),
                ),
                Some(Kind::Listener) => self.fail(
                    loc_of(n, step),
                    format!("`{}` is a listener: `accept` a connection on it first", n.value),
                ),
                Some(Kind::Endpoint) => self.fail(
                    loc_of(n, step),
                    format!(
                        "`{}` is a datagram endpoint: use `send_datagram` and `expect_datagram` on it",
                        n.value
                    ),
                ),
                Some(Kind::Relay) => self.fail(
                    loc_of(n, step),
                    format!("`{}` is a relay: it passes datagrams on by itself", n.value),
                ),
                None if scope.group_of(&n.value).is_some() => {
                    let (group, count) = scope.group_of(&n.value).unwrap_or_default();
                    self.fail(
                        loc_of(n, step),
                        format!("expected a member of `{group}` (`{group}#1` to `{group}#{count}`), found `{}`", n.value),
                    )
                }
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
        }
    }

    /// A datagram step's endpoint, opened by an earlier step.
    pub(super) fn endpoint(&mut self, scope: &Scope, name: &Name, at: Location) {
        if scope.names.get(&name.value) == Some(&Kind::Endpoint) {
            return;
        }
        let mut known: Vec<_> = scope
            .names
            .iter()
            .filter(|(_, k)| **k == Kind::Endpoint)
            .map(|(n, _)| format!("`{n}`"))
            .collect();
        known.sort();
        let known = if known.is_empty() {
            "none yet".to_string()
        } else {
            known.join(", ")
        };
        let what = match scope.kind(&name.value) {
            Some(Kind::Connection | Kind::Group(_)) => format!(" (`{}` is a TCP connection)", name.value),
            Some(Kind::Listener) => format!(" (`{}` is a TCP listener)", name.value),
            Some(Kind::Relay) => format!(" (`{}` is a relay)", name.value),
            _ => String::new(),
        };
        self.fail(
            loc_of(name, at),
            format!(
                "expected an endpoint opened by an earlier `udp_open`, `udp_bind`, `join` or `multicast_sender` ({known}), found `{}`{what}",
                name.value
            ),
        );
    }

    /// A message of an `rpc` step: a kind the spec's `frames` declares,
    /// each value in its field's range; a message sent has every field.
    pub(super) fn message(&mut self, m: &super::rpc::Message, whole: bool, at: Location) {
        let Some(frames) = self.frames else {
            return self.fail(
                at,
                "expected the spec to declare its messages under `frames` (length and fields) before a step sends or expects one".into(),
            );
        };
        let Some(fields) = frames.fields(&m.kind) else {
            let known: Vec<String> = frames.messages.keys().map(|k| format!("`{k}`")).collect();
            return self.fail(
                at,
                format!(
                    "expected a message of `frames` ({}), found `{}`",
                    known.join(", "),
                    m.kind
                ),
            );
        };
        for (name, value) in &m.values {
            match fields.iter().find(|(n, _)| n == name) {
                None => {
                    let known: Vec<String> = fields.iter().map(|(n, _)| format!("`{n}`")).collect();
                    self.fail(
                        at,
                        format!(
                            "expected a field of `{}` ({}), found `{name}`",
                            m.kind,
                            known.join(", ")
                        ),
                    )
                }
                Some((_, ty)) => {
                    let (low, high) = ty.range();
                    if *value < low || *value > high {
                        self.fail(
                            at,
                            format!("expected `{name}` ({}) from {low} to {high}, found {value}", ty.name()),
                        )
                    }
                }
            }
        }
        if whole {
            let missing: Vec<&str> = fields
                .iter()
                .map(|(n, _)| *n)
                .filter(|n| !m.values.contains_key(*n))
                .collect();
            if !missing.is_empty() {
                self.fail(
                    at,
                    format!(
                        "expected every field of `{}` in a message sent; missing: {}",
                        m.kind,
                        missing.join(", ")
                    ),
                );
            }
        }
    }

    /// Each step's rules, in order: what a step opens is known to the
    /// steps after it.
    pub(super) fn steps(&mut self, steps: &[Spanned<Step>], scope: &mut Scope) {
        for step in steps {
            step.value.check(self, scope, step.referenced);
        }
    }
}
