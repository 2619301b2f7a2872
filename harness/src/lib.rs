//! sockgrade: grades socket-programming labs.
//!
//! The path through the code, one module per arrow: a `spec` is loaded; a
//! `submission` is built; the `runner` plays each `scenario` with its actors
//! (`program`s under test in a `sandbox`, TCP `conn`ections played by the
//! harness), while the `transcript` records what happened; a `verdict` comes
//! out of each scenario and the `report` modules print them.

pub mod conn;
pub mod escape;
pub mod isolation;
pub mod program;
pub mod report;
pub mod runner;
pub mod sandbox;
pub mod scenario;
pub mod spec;
pub mod submission;
pub mod transcript;
pub mod verdict;
pub mod witness;
