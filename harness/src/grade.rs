//! Grading one submission, start to end: a private working directory, the
//! build (or the reference programs laid out as a submission), the
//! scenarios, and the one result every reporter reads. `sockgrade run` grades
//! one this way and `sockgrade grade` a whole class, one call each.

use crate::lang::Spec;
use crate::runner::{self, Options};
use crate::submission;
use crate::verdict::RunResult;
use std::path::{Path, PathBuf};

/// What is graded.
pub enum Source<'a> {
    /// A student's directory: copied, then built with `make`.
    Submission(&'a Path),
    /// The same, where a build kept for the same sources is taken instead
    /// of building again, and a new build is kept (`sockgrade grade`).
    Kept(&'a Path, &'a submission::KeptBuild<'a>),
    /// The reference programs, found in this directory.
    Reference(&'a Path),
}

/// Why nothing could be graded. A submission that does not build is not
/// one of these: that is a graded result.
#[derive(Debug)]
pub enum Error {
    /// The input is wrong (no such directory, no reference program): the
    /// user's to fix.
    Input(String),
    /// The harness could not do its part (a working directory, a copy).
    Harness(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Input(e) | Error::Harness(e) => f.write_str(e),
        }
    }
}

/// Builds and grades `source` against `spec`. `label` names the submission
/// in reports.
pub fn grade(spec: &Spec, source: Source, label: String, options: &Options) -> Result<RunResult, Error> {
    let started = std::time::Instant::now();
    let work = work_dir().map_err(|e| Error::Harness(format!("cannot make a working directory: {e}")))?;
    let built = match source {
        Source::Reference(dir) => submission::reference(spec, dir, work.path()).map_err(Error::Input)?,
        Source::Submission(dir) | Source::Kept(dir, _) => {
            if !dir.is_dir() {
                return Err(Error::Input(format!(
                    "the submission `{}` is not a directory",
                    dir.display()
                )));
            }
            let kept = match source {
                Source::Kept(_, kept) => Some(kept),
                _ => None,
            };
            match kept.and_then(|k| k.take(work.path())) {
                Some(built) => built,
                None => {
                    let built = submission::build(dir, work.path())
                        .map_err(|e| Error::Harness(format!("could not grade the submission: {e}")))?;
                    // A build that ran out of time may not next time.
                    if built.build.status != submission::BuildStatus::Timeout {
                        if let Some(kept) = kept {
                            kept.keep(&built);
                        }
                    }
                    built
                }
            }
        }
    };
    let reference_dir = options.reference_dir.clone().unwrap_or_else(default_reference_dir);
    submission::add_reference_programs(spec, &reference_dir, work.path());
    let broken = (!built.build.succeeded()).then(|| {
        format!(
            "the submission did not build (make {}); see the build output",
            built.build.status.as_str()
        )
    });
    let results = runner::run(spec, &built.dir, work.path(), options, broken.as_deref());
    Ok(RunResult::new(
        spec,
        label,
        built.build,
        results,
        options.isolation.as_str(),
        started.elapsed(),
    ))
}

/// Where `--reference` looks by default: beside this executable, where
/// cargo puts the reference programs.
pub fn default_reference_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
        .unwrap_or_default()
}

/// A private directory that others may pass through (the scenario's user
/// needs to reach its own directory inside) but not list.
fn work_dir() -> std::io::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new().prefix("sockgrade-").tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))?;
    Ok(dir)
}
