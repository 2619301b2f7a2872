//! The `flow` family: steps that hold steps. Run by `crate::steps::flow`.

use super::check::{Checker, Kind, Scope};
use super::step::{lower_conn_steps, lower_steps, Keyword, ScriptedWait};
use super::{ConnStep, Name, RawStep, Step};
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

/// `each: { connections: g, steps: [...] }`: runs its steps for every
/// connection of the group `g` (opened by `connect` with `count`), all at
/// once. Only connection steps, without `on` (or with `on: g`).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Each")]
pub struct RawEach {
    #[schemars(with = "String")]
    pub connections: Name,
    #[schemars(with = "Vec<RawStep>")]
    pub steps: Vec<Spanned<RawStep>>,
}

/// `each` after load: connection steps only, as its type says.
#[derive(Debug)]
pub struct Each {
    pub connections: Name,
    pub steps: Vec<Spanned<ConnStep>>,
}

impl RawEach {
    pub(super) fn lower(self) -> Result<Each, (Location, String)> {
        Ok(Each {
            connections: self.connections,
            steps: lower_conn_steps(self.steps)?,
        })
    }
}

impl Keyword for Each {
    fn describe(&self) -> String {
        format!("on every connection of `{}` at once", self.connections.value)
    }

    fn check(&self, checker: &mut Checker<'_>, scope: &mut Scope, at: Location) {
        if !matches!(scope.names.get(&self.connections.value), Some(Kind::Group(_))) {
            checker.fail(
                super::check::loc_of(&self.connections, at),
                format!(
                    "expected a group opened by `connect` with `count`, found `{}`",
                    self.connections.value
                ),
            );
            return;
        }
        let mut inner = scope.clone();
        inner.each = Some(self.connections.value.clone());
        for step in &self.steps {
            let at = step.referenced;
            checker.member(&inner, step.value.on(), at);
            if step.value.precondition().is_some() {
                checker.fail(
                    at,
                    "expected no `precondition` inside `each`: write the step the scenario relies on before the `each`"
                        .into(),
                );
            }
            step.value.check(checker, &mut inner, at);
        }
    }

    fn scripted_wait(&self, wait: &mut ScriptedWait) {
        wait.total += ScriptedWait::of(self.steps.iter().map(|s| &s.value));
    }

    fn connections(&self) -> usize {
        self.steps
            .iter()
            .map(|s| s.value.connections())
            .fold(0, usize::saturating_add)
    }
}

/// `repeat: { times: 100, steps: [...] }`: runs its steps again and again,
/// one round after the other. Names opened inside belong to one round and
/// are reused by the next. Rounds that are alike show once in the
/// transcript.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "RepeatFields")]
#[schemars(with = "RepeatFields")]
#[schemars(rename = "Repeat")]
pub struct RawRepeat {
    times: usize,
    steps: Vec<Spanned<RawStep>>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "RawRepeat")]
struct RepeatFields {
    times: usize,
    #[schemars(with = "Vec<RawStep>")]
    steps: Vec<Spanned<RawStep>>,
}

impl TryFrom<RepeatFields> for RawRepeat {
    type Error = String;
    fn try_from(raw: RepeatFields) -> Result<Self, String> {
        if raw.times == 0 {
            return Err("expected `times` of at least 1".into());
        }
        if raw.steps.is_empty() {
            return Err("expected at least one step to repeat".into());
        }
        Ok(RawRepeat {
            times: raw.times,
            steps: raw.steps,
        })
    }
}

/// `repeat` after load.
#[derive(Debug)]
pub struct Repeat {
    pub times: usize,
    pub steps: Vec<Spanned<Step>>,
}

impl RawRepeat {
    pub(super) fn lower(self) -> Result<Repeat, (Location, String)> {
        Ok(Repeat {
            times: self.times,
            steps: lower_steps(self.steps)?,
        })
    }
}

impl Keyword for Repeat {
    fn describe(&self) -> String {
        format!("repeat {} times", self.times)
    }

    fn check(&self, checker: &mut Checker<'_>, scope: &mut Scope, _at: Location) {
        let mut inner = scope.clone();
        inner.in_repeat = true;
        checker.steps(&self.steps, &mut inner);
    }

    fn scripted_wait(&self, wait: &mut ScriptedWait) {
        wait.total +=
            ScriptedWait::of(self.steps.iter().map(|s| &s.value)) * u32::try_from(self.times).unwrap_or(u32::MAX);
    }

    fn connections(&self) -> usize {
        let round = self
            .steps
            .iter()
            .map(|s| s.value.connections())
            .fold(0, usize::saturating_add);
        round.saturating_mul(self.times)
    }
}
