//! Reporters: they turn a finished `Report` into text and run nothing.

pub mod human;
pub mod json;
