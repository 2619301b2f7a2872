//! A submission: copied to a private directory and built there with `make`,
//! under the same sandbox as the programs (a Makefile is untrusted code too).
//! A build that fails is a graded result, not an error of the harness.

use crate::process::{Captured, Running};
use crate::sandbox::{self, Identity};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const BUILD_TIMEOUT: Duration = Duration::from_secs(120);
const OUTPUT_SHOWN: usize = 16 << 10;

#[derive(Clone, Debug, Serialize)]
pub struct Build {
    pub status: BuildStatus,
    /// What make and the compiler printed (the end of it, when long).
    pub output: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildStatus {
    Ok,
    Failed,
    /// make did not finish within `BUILD_TIMEOUT`.
    Timeout,
    /// No Makefile: nothing to build.
    None,
}

impl BuildStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Ok => "ok",
            BuildStatus::Failed => "failed",
            BuildStatus::Timeout => "timeout",
            BuildStatus::None => "none",
        }
    }
}

impl Build {
    /// Nothing to build, or nothing was needed.
    fn nothing() -> Build {
        Build {
            status: BuildStatus::None,
            output: String::new(),
        }
    }

    pub fn succeeded(&self) -> bool {
        matches!(self.status, BuildStatus::Ok | BuildStatus::None)
    }
}

/// A submission copied into `work/build` and built there.
pub struct Built {
    pub dir: PathBuf,
    pub build: Build,
}

/// Copies `source` to a private directory under `work` and runs `make`.
pub fn build(source: &Path, work: &Path) -> std::io::Result<Built> {
    let identity = Identity::acquire().map_err(std::io::Error::other)?;
    let uid = identity.as_ref().map(|i| i.uid);
    let dir = work.join("build");
    sandbox::copy_dir(source, &dir, uid)?;
    if !dir.join("Makefile").exists() && !dir.join("makefile").exists() {
        return Ok(Built {
            dir,
            build: Build::nothing(),
        });
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let build = runtime.block_on(async {
        let argv = vec!["make".to_string()];
        let mut make = match Running::spawn("make", &argv, &dir, uid, None) {
            Ok(m) => m,
            Err(e) => {
                return Build {
                    status: BuildStatus::Failed,
                    output: format!("could not run make: {e}"),
                }
            }
        };
        let status = make.wait(BUILD_TIMEOUT).await;
        let status = match status {
            Some(s) if s.success() => BuildStatus::Ok,
            Some(_) => BuildStatus::Failed,
            None => BuildStatus::Timeout,
        };
        // Everything make started goes, whatever happened.
        match uid {
            Some(uid) => sandbox::kill_all_of(uid),
            None => sandbox::kill_tree(make.pid),
        }
        make.wait(Duration::from_secs(2)).await;
        let mut output = combined_output(&make.stdout.lock().unwrap(), &make.stderr.lock().unwrap());
        if status == BuildStatus::Timeout {
            output.push_str(&format!(
                "\n[make did not finish within {}s and was stopped]\n",
                BUILD_TIMEOUT.as_secs()
            ));
        }
        Build { status, output }
    });
    drop(identity);
    // Back to root: the scenarios copy from here, and none of their users
    // may change it.
    if uid.is_some() {
        sandbox::chown_tree(&dir, 0)?;
    }
    Ok(Built { dir, build })
}

/// make's stdout then its stderr, each cut to its end when long.
fn combined_output(out: &Captured, err: &Captured) -> String {
    let part = |c: &Captured| {
        let (bytes, dropped) = c.last(OUTPUT_SHOWN);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if dropped > 0 {
            format!("[... {dropped} bytes before]\n{text}")
        } else {
            text
        }
    };
    let mut s = part(out);
    let e = part(err);
    if !s.is_empty() && !e.is_empty() && !s.ends_with('\n') {
        s.push('\n');
    }
    s + &e
}

/// Where a program the spec marks `reference: true` is put in the
/// submission's directory (and so in each scenario's copy of it).
pub const REFERENCE_PROGRAMS: &str = ".sockgrade-reference";

/// The executable a program marked `reference: true` is started from,
/// relative to the scenario's directory.
pub fn reference_program(command0: &str) -> String {
    let exe = command0.strip_prefix("./").unwrap_or(command0);
    format!("./{REFERENCE_PROGRAMS}/{exe}")
}

/// Copies the programs the spec marks `reference: true` into `dir`. One
/// that is missing is not an error here: a scenario that starts it says so
/// (it can't run), and the other scenarios run.
pub fn add_reference_programs(spec: &crate::spec::Spec, reference_dir: &Path, dir: &Path) {
    for program in spec.programs.values().filter(|p| p.reference) {
        let exe = program.command[0].strip_prefix("./").unwrap_or(&program.command[0]);
        let from = reference_dir.join(exe);
        let to = dir.join(REFERENCE_PROGRAMS);
        if from.is_file() && std::fs::create_dir_all(&to).is_ok() {
            let _ = std::fs::copy(&from, to.join(exe));
        }
    }
}

/// The reference programs, laid out as a submission: each program's
/// executable copied from `reference_dir` (where cargo put the `reference`
/// crate's binaries).
pub fn reference(spec: &crate::spec::Spec, reference_dir: &Path, work: &Path) -> Result<Built, String> {
    let dir = work.join("reference");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    for program in spec.programs.values().filter(|p| !p.reference) {
        // Only programs of the submission (`./name`); a system program
        // such as python3 is used where it is.
        let Some(exe) = program.command[0]
            .strip_prefix("./")
            .filter(|e| !e.contains('/') && !e.is_empty())
        else {
            continue;
        };
        let from = reference_dir.join(exe);
        if !from.exists() {
            return Err(format!(
                "no reference program `{exe}` in {} (build them with `cargo build --release -p reference`, or name the directory with --reference-dir)",
                reference_dir.display()
            ));
        }
        std::fs::copy(&from, dir.join(exe)).map_err(|e| format!("copying {}: {e}", from.display()))?;
    }
    Ok(Built {
        dir,
        build: Build::nothing(),
    })
}
