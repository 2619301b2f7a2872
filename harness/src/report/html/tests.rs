//! Unit tests of the HTML report (see mod.rs).
