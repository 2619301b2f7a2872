//! A submission: copied to a private directory and built there with `make`,
//! under the same sandbox as the programs (a Makefile is untrusted code too).
//! A build that fails is a graded result, not an error of the harness.

use crate::process::{Captured, Running};
use crate::room::{self, Room, Walls};
use crate::sandbox::{self, Identity};
use crate::tree::{self, CopyError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const BUILD_TIMEOUT: Duration = Duration::from_secs(120);
const OUTPUT_SHOWN: usize = 16 << 10;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Build {
    pub status: BuildStatus,
    /// What make and the compiler printed (the end of it, when long).
    pub output: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

/// A submission built, in the grader's own copy `work/build`.
pub struct Built {
    pub dir: PathBuf,
    pub build: Build,
}

/// A build kept for the next grading of the same sources (`sockgrade
/// grade` over a class again, after a fix to the spec): the grader's copy
/// of what `make` left, its status and output, under `dir`, for sources
/// whose fingerprint is `key` (`class::fingerprint::of_sources`).
///
/// `dir` is the grader's own (under OUT), and what it holds is copied in
/// and out as any submission's files are (`crate::tree`): the kept tree
/// was the student's Makefile's work, and is not trusted more for having
/// been kept.
pub struct KeptBuild<'a> {
    pub dir: &'a Path,
    pub key: &'a str,
}

/// Files of a kept build: written in this order, the key last, so that a
/// run interrupted half-way leaves nothing that looks kept.
const KEPT_TREE: &str = "tree";
const KEPT_BUILD: &str = "build.json";
const KEPT_KEY: &str = "key";

impl KeptBuild<'_> {
    /// The kept build as `work/build`, when it was kept for these sources.
    pub fn take(&self, work: &Path) -> Option<Built> {
        let kept = std::fs::read_to_string(self.dir.join(KEPT_KEY)).ok()?;
        if kept != self.key {
            return None;
        }
        let build: Build = serde_json::from_str(&std::fs::read_to_string(self.dir.join(KEPT_BUILD)).ok()?).ok()?;
        let dir = work.join("build");
        if tree::copy(&self.dir.join(KEPT_TREE), &dir, None, false).is_err() {
            // Half a copy would stand in the way of the build made instead.
            let _ = std::fs::remove_dir_all(&dir);
            return None;
        }
        Some(Built { dir, build })
    }

    /// Keeps `built` for these sources, in place of what was kept; a build
    /// that could not be kept is made again next time.
    pub fn keep(&self, built: &Built) {
        let _ = std::fs::remove_dir_all(self.dir);
        let kept = (|| -> Result<(), String> {
            std::fs::create_dir_all(self.dir).map_err(|e| e.to_string())?;
            tree::copy(&built.dir, &self.dir.join(KEPT_TREE), None, false).map_err(|e| e.to_string())?;
            let build = serde_json::to_string(&built.build).map_err(|e| e.to_string())?;
            crate::class::write_atomically(&self.dir.join(KEPT_BUILD), &build).map_err(|e| e.to_string())?;
            crate::class::write_atomically(&self.dir.join(KEPT_KEY), self.key).map_err(|e| e.to_string())
        })();
        if let Err(why) = kept {
            tracing::warn!("could not keep the build in {}: {why}", self.dir.display());
            let _ = std::fs::remove_dir_all(self.dir);
        }
    }
}

/// Copies `source` to a private directory under `work` (`work/make`, the
/// build's user's), runs `make` there, and copies the result into
/// `work/build`, root's, which the scenarios copy from: the grader reads
/// what the student and the Makefile left, and never writes into it.
pub fn build(source: &Path, work: &Path) -> std::io::Result<Built> {
    let identity = Identity::acquire().map_err(std::io::Error::other)?;
    let uid = identity.as_ref().map(|i| i.uid);
    let make_dir = work.join("make");
    let dir = work.join("build");
    let failed = |output: String| Built {
        dir: dir.clone(),
        build: Build {
            status: BuildStatus::Failed,
            output,
        },
    };
    let copied = match tree::copy(source, &make_dir, uid, false) {
        Ok(copied) => copied,
        Err(CopyError::TooBig(why)) => return Ok(failed(format!("[sockgrade] {why}: it was not built\n"))),
        Err(CopyError::Io(e)) => return Err(e),
    };
    let note = copied.note().unwrap_or_default();
    let build = if make_dir.join("Makefile").exists() || make_dir.join("makefile").exists() {
        let mut build = make(&make_dir, uid)?;
        build.output.insert_str(0, &note);
        build
    } else {
        Build {
            status: BuildStatus::None,
            output: note,
        }
    };
    // Copied while the user is still ours: no other run's program of the
    // same user can change it meanwhile.
    let result = match tree::copy(&make_dir, &dir, None, false) {
        Ok(_) => Built { dir, build },
        Err(CopyError::TooBig(why)) => failed(format!("{}\n[sockgrade] after make, {why}\n", build.output)),
        Err(CopyError::Io(e)) => return Err(e),
    };
    drop(identity);
    // Only ever read, and no longer: what the student's user left there
    // goes with the user's processes, already ended.
    let _ = std::fs::remove_dir_all(&make_dir);
    Ok(result)
}

/// Runs `make` in `dir` as `uid`, within `BUILD_TIMEOUT`, in a room of
/// its own (`crate::room`) and without network: a network namespace of its
/// own where the machine allows one, else no TCP (Landlock). Everything it
/// started is ended after.
fn make(dir: &Path, uid: Option<u32>) -> std::io::Result<Build> {
    let room = Room::make(&room::Plan {
        dir,
        read_only: Vec::new(),
        no_tcp: true,
    })
    .map_err(|e| std::io::Error::other(format!("could not make the build's room: {e}")))?;
    // A thread of its own, which leaves the grader's network for good.
    std::thread::scope(|s| {
        s.spawn(|| {
            if Walls::here().netns {
                crate::isolation::enter_netns()?;
            }
            make_in(dir, uid, &room)
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the build's thread failed")))
    })
}

fn make_in(dir: &Path, uid: Option<u32>, room: &Room) -> std::io::Result<Build> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    Ok(runtime.block_on(async {
        let argv = vec!["make".to_string()];
        let mut make = match Running::spawn("make", &argv, dir, uid, None, room) {
            Ok(m) => m,
            Err(e) => {
                return Build {
                    status: BuildStatus::Failed,
                    output: format!("could not run make: {e}"),
                }
            }
        };
        // On the wall clock: a build has no scenario whose programs' time
        // could be counted, and its bound is a guard, not a verdict's.
        let status = make
            .wait_until(&mut crate::program_time::Deadline::on_the_wall_clock(BUILD_TIMEOUT))
            .await;
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
        // Its last words may still be in the pipes when it has ended: a
        // compiler's last error is the one a student needs.
        make.output_drained().await;
        let mut output = combined_output(&make.stdout.lock().unwrap(), &make.stderr.lock().unwrap());
        if status == BuildStatus::Timeout {
            output.push_str(&format!(
                "\n[make did not finish within {}s and was stopped]\n",
                BUILD_TIMEOUT.as_secs()
            ));
        }
        Build { status, output }
    }))
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

/// The folder of the grader's working directory where the programs a spec
/// marks `reference: true` are copied: the grader's own, beside the
/// submission's copies and never inside one (a link in a submission once
/// made root copy the model server over the student's, or anywhere).
pub const REFERENCE_PROGRAMS: &str = "reference-programs";

/// The executable a program marked `reference: true` is started from.
pub fn reference_program(work: &Path, command0: &str) -> PathBuf {
    let exe = command0.strip_prefix("./").unwrap_or(command0);
    work.join(REFERENCE_PROGRAMS).join(exe)
}

/// Copies the programs the spec marks `reference: true` into `work`'s
/// `REFERENCE_PROGRAMS`. One that is missing is not an error here: a
/// scenario that starts it says so (it can't run), and the other
/// scenarios run.
pub fn add_reference_programs(spec: &crate::lang::Spec, reference_dir: &Path, work: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let to = work.join(REFERENCE_PROGRAMS);
    for program in spec.programs.values().filter(|p| p.reference) {
        let from = reference_dir.join(program.command[0].strip_prefix("./").unwrap_or(&program.command[0]));
        let (Ok(mut source), Ok(())) = (std::fs::File::open(&from), std::fs::create_dir_all(&to)) else {
            continue;
        };
        let _ = std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o755));
        // A new file of the grader's, readable and executable by all.
        let target = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .open(reference_program(work, &program.command[0]));
        if let Ok(mut target) = target {
            let _ = std::io::copy(&mut source, &mut target);
            let _ = target.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o755));
        }
    }
}

/// The reference programs, laid out as a submission: each program's
/// executable copied from `reference_dir` (where cargo put the `reference`
/// crate's binaries).
pub fn reference(spec: &crate::lang::Spec, reference_dir: &Path, work: &Path) -> Result<Built, String> {
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
