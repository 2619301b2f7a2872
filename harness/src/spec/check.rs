//! The checks that span steps: every name a step uses was declared (a program
//! of the spec, a connection, group or listener opened by an earlier step),
//! `each` holds only connection steps, scenario names are unique. A step's
//! own rules were checked as serde built it (see each family's file).

use super::{Name, RawSpec, Step};
use serde_saphyr::{Location, Spanned};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The first error, with where it is (`None`: the spec as a whole).
pub(super) fn check(raw: &RawSpec) -> Option<(Option<Location>, String)> {
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
    checker.errors.into_iter().next()
}

/// What a name declared in a scenario stands for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
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
struct Scope {
    names: HashMap<String, Kind>,
    /// Programs with an `fd_baseline` / a `memory_baseline` before here.
    fd_baselines: std::collections::HashSet<String>,
    memory_baselines: std::collections::HashSet<String>,
    /// Listeners with a port of their own before here: what `{port:NAME}`
    /// may name.
    own_ports: std::collections::HashSet<String>,
    /// Inside a `repeat`: `{round}` has a value.
    in_repeat: bool,
}

impl Scope {
    /// What `name` stands for: a member of a group (`g#3`) is a connection
    /// of its own, as `connect` named it.
    fn kind(&self, name: &str) -> Option<Kind> {
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

struct Checker<'a> {
    errors: Vec<(Option<Location>, String)>,
    programs: &'a BTreeMap<String, super::Program>,
    frames: Option<&'a super::rpc::Frames>,
    docroot: Option<&'a super::http::Docroot>,
}

/// The files a spec's `docroot` declares.
fn raw_files(docroot: Option<&super::http::Docroot>) -> Vec<&str> {
    docroot
        .map(|d| d.files.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// Where a name was written, or the step's location for the shorthand form.
fn loc_of(name: &Name, step: Location) -> Location {
    if name.referenced == Location::UNKNOWN {
        step
    } else {
        name.referenced
    }
}

/// The keywords of the steps that run on one connection, for messages:
/// those for which `Step::on` says so.
const CONNECTION_STEPS: &str =
    "send, expect, echo, expect_eof, expect_reset, shutdown, close, abort, read_slowly, expect_silence, send_request, expect_response, expect_request, send_response, send_message, expect_message";

impl Checker<'_> {
    fn fail(&mut self, at: Location, message: String) {
        self.errors.push((Some(at), message));
    }

    /// A program of the spec that a baseline step (`baseline`, with its
    /// article) took before `keyword` compares with it.
    fn program_with_baseline(
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
    fn known_placeholders<'t>(&mut self, scope: &Scope, texts: impl Iterator<Item = &'t String>, at: Location) {
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
    fn not_filled(&mut self, payload: &super::values::Payload, why: &str, at: Location) {
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
    fn listener(&mut self, scope: &Scope, name: &Name, at: Location) {
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
    fn program_and_connection(&mut self, program: &Name, conn: &Name, groups: bool, scope: &Scope, at: Location) {
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

    /// A connection step's `on`: inside `each`, absent or the group's name.
    fn connection(&mut self, scope: &Scope, on: Option<&Name>, step: Location, each: Option<&str>) {
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
            (Some(n), None) => match scope.kind(&n.value) {
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
            },
        }
    }

    /// A datagram step's endpoint, opened by an earlier step.
    fn endpoint(&mut self, scope: &Scope, name: &Name, at: Location) {
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
    fn message(&mut self, m: &super::rpc::Message, whole: bool, at: Location) {
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

    fn steps(&mut self, steps: &[Spanned<Step>], scope: &mut Scope, each: Option<&str>) {
        for step in steps {
            self.step(&step.value, step.referenced, scope, each);
        }
    }

    fn step(&mut self, step: &Step, at: Location, scope: &mut Scope, each: Option<&str>) {
        if let Some(on) = step.on() {
            self.connection(scope, on, at, each);
            if each.is_some() && step.precondition().is_some() {
                self.fail(
                    at,
                    "expected no `precondition` inside `each`: write the step the scenario relies on before the `each`"
                        .into(),
                );
            }
            match step {
                Step::Send(s) => self.not_filled(&s.payload, "`send` sends its bytes as written", at),
                Step::SendResponse(s) => {
                    self.known_placeholders(scope, s.headers.values(), at);
                    self.not_filled(&s.body, "a body is sent as written", at);
                }
                Step::SendMessage(s) => {
                    for m in &s.messages {
                        self.message(m, true, at);
                    }
                }
                Step::ExpectMessage(e) => self.message(&e.message, false, at),
                Step::SendRequest(s) => {
                    let texts = s
                        .requests
                        .iter()
                        .flat_map(|r| std::iter::once(&r.target).chain(r.headers.values()));
                    self.known_placeholders(scope, texts, at);
                    for body in s.requests.iter().filter_map(|r| r.body.as_ref()) {
                        self.not_filled(body, "a body is sent as written", at);
                    }
                }
                Step::ExpectRequest(e) => {
                    let texts = e.target.iter().chain(e.headers.values());
                    self.known_placeholders(scope, texts, at);
                }
                Step::ExpectResponse(e) => {
                    self.known_placeholders(scope, e.headers.values(), at);
                    if let Some(file) = e.body.as_ref().and_then(|b| b.file.as_ref()) {
                        if !raw_files(self.docroot).contains(&file.as_str()) {
                            self.fail(
                                at,
                                format!("expected a file of the spec's `docroot` (`files`), found `{file}`"),
                            );
                        }
                    }
                    if e.to_head && e.body.is_some() {
                        self.fail(
                            at,
                            "expected no `body` with `to_head: true`: a response to HEAD has none".into(),
                        );
                    }
                }
                _ => {}
            }
            if let Step::Expect(super::tcp::Expect {
                expected: super::tcp::Expected::SameAs(other),
                ..
            }) = step
            {
                if each.is_some() {
                    self.fail(
                        loc_of(other, at),
                        "expected `same_as` outside `each`, where its connection is".into(),
                    );
                } else if scope.kind(&other.value) != Some(Kind::Connection) {
                    self.fail(
                        loc_of(other, at),
                        format!(
                            "expected a connection opened by an earlier `connect` or `accept`, found `{}`",
                            other.value
                        ),
                    );
                }
            }
            return;
        }
        if each.is_some() {
            self.fail(
                at,
                format!(
                    "expected a connection step inside `each` ({CONNECTION_STEPS}), found `{}`",
                    step.keyword()
                ),
            );
            return;
        }
        match step {
            Step::Start(s) | Step::Restart(s) => {
                self.program(&s.program, at);
                let command = self
                    .programs
                    .get(&s.program.value)
                    .map(|p| p.command.clone())
                    .unwrap_or_default();
                self.known_placeholders(scope, command.iter().chain(s.args.iter().flatten()), at);
            }
            Step::Stop(s) => self.program(&s.program, at),
            Step::Kill(p) | Step::ExpectRunning(p) => self.program(&p.program, at),
            Step::FdBaseline(p) => {
                self.program(&p.program, at);
                scope.fd_baselines.insert(p.program.value.clone());
            }
            Step::MemoryBaseline(p) => {
                self.program(&p.program, at);
                scope.memory_baselines.insert(p.program.value.clone());
            }
            Step::Signal(s) => self.program(&s.program, at),
            Step::ExpectExit(e) => self.program(&e.program, at),
            Step::ExpectOutput(o) => self.program(&o.program, at),
            Step::Connect(c) => {
                let kind = match c.count {
                    Some(n) => Kind::Group(n),
                    None => Kind::Connection,
                };
                self.declare(scope, &c.name, kind, at);
            }
            Step::Listen(l) => {
                self.declare(scope, &l.name, Kind::Listener, at);
                if let Some(super::tcp::ListenPort::Own(_)) = l.port {
                    scope.own_ports.insert(l.name.value.clone());
                }
            }
            Step::Accept(a) => {
                self.listener(scope, &a.on, at);
                self.declare(scope, &a.name, Kind::Connection, at);
            }
            Step::ExpectNoConnection(e) => self.listener(scope, &e.on, at),
            Step::UdpOpen(o) => {
                self.declare(scope, &o.name, Kind::Endpoint, at);
                for i in 1..=o.count.unwrap_or(0) {
                    scope.names.insert(format!("{}#{i}", o.name.value), Kind::Endpoint);
                }
                if o.count.is_some() {
                    // The name alone is no endpoint: its members are.
                    scope.names.remove(&o.name.value);
                }
            }
            Step::UdpBind(b) => self.declare(scope, &b.name, Kind::Endpoint, at),
            Step::Join(j) => self.declare(scope, &j.name, Kind::Endpoint, at),
            Step::MulticastSender(s) => self.declare(scope, &s.name, Kind::Endpoint, at),
            Step::SendDatagram(s) => {
                self.endpoint(scope, &s.on, at);
                if let Some(to) = &s.to {
                    self.endpoint(scope, to, at);
                }
            }
            Step::ExpectDatagram(e) => self.endpoint(scope, &e.on, at),
            Step::ExpectNoDatagram(e) => self.endpoint(scope, &e.on, at),
            Step::ExpectMembers(_) => {}
            Step::Relay(r) => {
                self.declare(scope, &r.name, Kind::Relay, at);
                self.program(&r.to, at);
                if let Some(p) = self.programs.get(&r.to.value) {
                    if !p.command.iter().any(|a| a.contains("{port2}")) {
                        self.fail(
                            loc_of(&r.to, at),
                            format!(
                                "expected a program given `{{port2}}` in its command (the relay listens on `{{port}}` and passes datagrams on to `{{port2}}`), found `{}`",
                                r.to.value
                            ),
                        );
                    }
                }
            }
            // Found while the scenario ran, these were charged to the
            // student: they are the spec's to get right.
            Step::ExpectFds(f) => {
                let before = &scope.fd_baselines;
                self.program_with_baseline(&f.program, before, "an `fd_baseline", "expect_fds", at)
            }
            Step::ExpectMemory(m) => {
                let before = &scope.memory_baselines;
                self.program_with_baseline(&m.program, before, "a `memory_baseline", "expect_memory", at)
            }
            Step::Fill(f) => self.program_and_connection(&f.program, &f.on, false, scope, at),
            Step::ExpectAccepted(a) => self.program_and_connection(&a.program, &a.connection, true, scope, at),
            Step::ExpectRead(r) => self.program_and_connection(&r.program, &r.connection, false, scope, at),
            Step::ExpectReleased(r) => self.program_and_connection(&r.program, &r.connection, false, scope, at),
            Step::ExpectZombies(z) => self.program(&z.program, at),
            Step::ExpectAtRest(r) => self.program(&r.program, at),
            Step::ExpectIdle(i) => self.program(&i.program, at),
            Step::Each(e) => {
                if !matches!(scope.names.get(&e.connections.value), Some(Kind::Group(_))) {
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
                let mut inner = scope.clone();
                inner.in_repeat = true;
                self.steps(&r.steps, &mut inner, None);
            }
            // Connection steps returned above, after `Step::on` said so.
            Step::Send(_)
            | Step::Expect(_)
            | Step::Echo(_)
            | Step::ExpectEof(_)
            | Step::ExpectClosed(_)
            | Step::ExpectReset(_)
            | Step::Shutdown(_)
            | Step::Close(_)
            | Step::Abort(_)
            | Step::ReadSlowly(_)
            | Step::ExpectSilence(_)
            | Step::SendMessage(_)
            | Step::ExpectMessage(_)
            | Step::SendRequest(_)
            | Step::ExpectResponse(_)
            | Step::ExpectRequest(_)
            | Step::SendResponse(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CONNECTION_STEPS;

    /// The keywords the message lists are the steps `Step::on` calls
    /// connection steps.
    #[test]
    fn the_listed_connection_steps_are_the_connection_steps() {
        let samples = [
            "send: { text: x }",
            "expect: { text: x }",
            "echo: { text: x }",
            "expect_eof: a",
            "expect_reset: a",
            "shutdown: a",
            "close: a",
            "abort: a",
            "read_slowly: { chunk: 1, gap: 1ms }",
            "expect_silence: { for: 1ms }",
            "send_request: { request: { target: / } }",
            "expect_response: { status: 200 }",
            "expect_request: { method: GET }",
            "send_response: { status: 200 }",
            "send_message: { message: { m: { x: 1 } } }",
            "expect_message: { message: { m: { x: 1 } } }",
        ];
        let keywords: Vec<&str> = CONNECTION_STEPS.split(", ").collect();
        assert_eq!(keywords.len(), samples.len());
        for (keyword, sample) in keywords.iter().zip(samples) {
            let step: super::Step = serde_saphyr::from_str(sample).unwrap();
            assert_eq!(step.keyword(), *keyword);
            assert!(step.on().is_some(), "{keyword} is not a connection step");
        }
    }
}
