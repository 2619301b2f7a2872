//! The spec language: what an instructor writes.
//!
//! A spec names its lab, the programs a submission must provide (with their
//! command lines) and the scenarios that test them. Each scenario is a list of
//! steps played in order. The types here mirror the YAML one to one; `load`
//! parses them with serde-saphyr and then checks what serde cannot (that a
//! step names a program or connection that exists), so that every error points
//! at a file, line and column.

mod load;
mod steps;
pub mod values;

pub use load::{load, load_str, SpecError};
pub use steps::*;
pub use values::{Fill, Payload, PayloadSource, Size, Span};

use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A whole spec file, validated.
#[derive(Debug)]
pub struct Spec {
    pub path: PathBuf,
    pub lab: String,
    pub programs: BTreeMap<String, Program>,
    pub scenarios: Vec<Scenario>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSpec {
    pub lab: String,
    pub programs: BTreeMap<String, Program>,
    pub scenarios: Vec<Spanned<Scenario>>,
}

/// A program the submission provides: `./echoserver {port}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Program {
    /// The executable (relative to the submission) and its arguments.
    /// Placeholders: `{port}` the scenario's port, `{host}` 127.0.0.1.
    pub command: Vec<String>,
    /// A server: `start` waits until it listens on `{port}` (tcp) or is bound
    /// to it (udp), as the kernel reports in /proc.
    #[serde(default)]
    pub listens: Option<Protocol>,
    /// Upper bound for readiness; the handouts say 2 s.
    #[serde(default)]
    pub ready_within: Option<Span>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    #[default]
    Visible,
    Hidden,
    AfterDueDate,
    AfterPublished,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default = "one_point")]
    pub points: u32,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub hint: Option<String>,
    #[serde(default)]
    pub visibility: Visibility,
    /// Upper bound for the whole scenario: a guard against hangs.
    #[serde(default)]
    pub timeout: Option<Span>,
    pub steps: Vec<Spanned<Step>>,
}

fn one_point() -> u32 {
    1
}
