//! The `flow` family: steps that hold steps. Run by `crate::steps::flow`.

use super::{Name, Step};
use serde::Deserialize;
use serde_saphyr::Spanned;

/// `each: { connections: g, steps: [...] }`: runs its steps for every
/// connection of the group `g` (opened by `connect` with `count`), all at
/// once. Only connection steps, without `on` (or with `on: g`).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Each {
    #[schemars(with = "String")]
    pub connections: Name,
    #[schemars(with = "Vec<Step>")]
    pub steps: Vec<Spanned<Step>>,
}

/// `repeat: { times: 100, steps: [...] }`: runs its steps again and again,
/// one round after the other. Names opened inside belong to one round and
/// are reused by the next. Rounds that are alike show once in the
/// transcript.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "RawRepeat")]
#[schemars(with = "RawRepeat")]
pub struct Repeat {
    pub times: usize,
    pub steps: Vec<Spanned<Step>>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawRepeat {
    times: usize,
    #[schemars(with = "Vec<Step>")]
    steps: Vec<Spanned<Step>>,
}

impl TryFrom<RawRepeat> for Repeat {
    type Error = String;
    fn try_from(raw: RawRepeat) -> Result<Self, String> {
        if raw.times == 0 {
            return Err("expected `times` of at least 1".into());
        }
        if raw.steps.is_empty() {
            return Err("expected at least one step to repeat".into());
        }
        Ok(Repeat {
            times: raw.times,
            steps: raw.steps,
        })
    }
}
