//! `sockgrade grade SPEC --submissions PARENT --out OUT`: a whole class.
//! Every directory under PARENT is a submission, graded exactly as `run`
//! grades one (`crate::grade`), several side by side; each gets a folder
//! under OUT with its reports and its fingerprint, and OUT/summary.csv sums
//! them up.
//!
//! - `fingerprint`: what a grade depends on; unchanged means not regraded.
//!   What a build depends on (the same, less the spec): unchanged means
//!   the build kept in OUT/.builds is taken instead of running make.
//! - `summary`: the CSV, rebuilt from the folders (shards included).
//! - `progress`: the line on a terminal.

pub mod fingerprint;
mod index;
mod progress;
pub mod rows;
pub mod summary;

use crate::grade::{self, Source};
use crate::lang::Spec;
use crate::report::{self, Format, Style};
use crate::runner::Options;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A submission's JSON report, in its folder: what `summary` reads.
pub const REPORT_FILE: &str = "report.json";
/// The human report, as a student or a grader reads it.
pub const HUMAN_FILE: &str = "report.txt";
/// The HTML report (sequence diagrams), for the same reader as report.txt.
pub const HTML_FILE: &str = "report.html";
/// Why the harness could not grade the submission (instead of the reports).
pub const ERROR_FILE: &str = "error.txt";
/// The fingerprint the reports were made for; written last.
const FINGERPRINT_FILE: &str = "fingerprint";
/// OUT/.builds/NAME: each submission's build, kept for a regrade of the
/// same sources (`submission::KeptBuild`). Hidden: not a submission's
/// folder, and no report of anyone's.
const KEPT_BUILDS: &str = ".builds";

/// `--partition K/N`: the K-th of N shares of the class (1-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    pub k: usize,
    pub n: usize,
}

impl std::str::FromStr for Partition {
    type Err = String;
    fn from_str(s: &str) -> Result<Partition, String> {
        let bad = || format!("expected K/N with 1 <= K <= N, e.g. 2/4, not `{s}`");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (k, n) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if k == 0 || n == 0 || k > n {
            return Err(bad());
        }
        Ok(Partition { k, n })
    }
}

pub struct ClassOptions {
    /// Submissions graded side by side; each runs its scenarios with its
    /// share of the same budget.
    pub jobs: usize,
    /// Isolation and `--only`, as for one submission (`jobs` is set here).
    pub run: Options,
    pub partition: Option<Partition>,
    /// For `report.txt`.
    pub style: Style,
}

/// How a class run went.
pub struct Outcome {
    /// Submissions in this run's share.
    pub selected: usize,
    pub graded: usize,
    /// Unchanged since their last grading.
    pub skipped: usize,
    /// Submissions the harness could not grade, and why.
    pub failed: Vec<(String, String)>,
}

/// The submissions under `parent`, by name: every directory but hidden
/// ones and `out` itself (when OUT is inside PARENT).
pub fn submissions(parent: &Path, out: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let out = out.canonicalize().ok();
    let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(parent)
        .map_err(|e| format!("cannot read the submissions in {}: {e}", parent.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter(|e| out.is_none() || e.path().canonicalize().ok() != out)
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    found.sort();
    Ok(found)
}

/// This partition's share: every N-th submission in name order, from the
/// K-th. The same class always splits the same way, and the shares differ
/// in size by one at most.
pub fn share<T>(all: Vec<T>, partition: Option<Partition>) -> Vec<T> {
    match partition {
        None => all,
        Some(p) => all
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % p.n == p.k - 1)
            .map(|(_, x)| x)
            .collect(),
    }
}

/// Grades the share of `parent`'s submissions that changed, writing each
/// one's folder under `out`. The summary is the caller's (`rows::write`):
/// shards must not write it at the same time.
pub fn grade(
    spec: &Spec,
    spec_text: &str,
    parent: &Path,
    out: &Path,
    options: &ClassOptions,
) -> Result<Outcome, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot make {}: {e}", out.display()))?;
    let all = submissions(parent, out)?;
    let selected = share(all, options.partition);
    let count = selected.len();
    // Shares of the cores: a submission holds one while it builds and runs
    // the scenarios that need a core, and gives it back once only those
    // that mostly wait on the clock are left, so that the next submission
    // starts beside them. More submissions than shares are then in flight,
    // but never more than this many.
    let shares = options.jobs.clamp(1, count.max(1));
    let in_flight = (shares * IN_FLIGHT_PER_SHARE).min(count.max(1));
    let cores = Cores::new(shares);
    let queue = Mutex::new(selected.into_iter().collect::<VecDeque<_>>());
    let progress = progress::Progress::new(count);
    let outcome = Mutex::new(Outcome {
        selected: count,
        graded: 0,
        skipped: 0,
        failed: Vec::new(),
    });
    std::thread::scope(|s| {
        for _ in 0..in_flight {
            s.spawn(|| loop {
                let Some((name, dir)) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front() else {
                    break;
                };
                let share = cores.take();
                let run = Options {
                    // The budget is shared: N submissions at once, or fewer
                    // with their scenarios side by side.
                    jobs: (options.jobs / shares).max(1),
                    isolation: options.run.isolation,
                    filter: options.run.filter.clone(),
                    reference_dir: options.run.reference_dir.clone(),
                    working_done: Some(share.giver()),
                };
                progress.started(&name);
                let done = one(spec, spec_text, &name, &dir, out, &run, &options.style);
                drop(share);
                let mut o = outcome.lock().unwrap_or_else(|e| e.into_inner());
                match done {
                    Ok(true) => o.graded += 1,
                    Ok(false) => o.skipped += 1,
                    Err(why) => o.failed.push((name.clone(), why)),
                }
                drop(o);
                progress.finished(&name);
            });
        }
    });
    progress.clear();
    let mut outcome = outcome.into_inner().unwrap_or_else(|e| e.into_inner());
    outcome.failed.sort();
    Ok(outcome)
}

/// One submission: skipped when its folder was made for the same
/// fingerprint (`Ok(false)`), graded otherwise (`Ok(true)`).
fn one(
    spec: &Spec,
    spec_text: &str,
    name: &str,
    dir: &Path,
    out: &Path,
    run: &Options,
    style: &Style,
) -> Result<bool, String> {
    let folder = out.join(name);
    // Unreadable, the submission cannot be graded; its folder then says why
    // rather than keep the reports of a version that may be gone.
    let fingerprint = fingerprint::of(dir, spec_text, &run.filter);
    if let Ok(f) = &fingerprint {
        let previous = std::fs::read_to_string(folder.join(FINGERPRINT_FILE)).ok();
        if previous.as_deref() == Some(f.as_str()) && folder.join(REPORT_FILE).is_file() {
            return Ok(false);
        }
    }
    std::fs::create_dir_all(&folder).map_err(|e| format!("cannot make {}: {e}", folder.display()))?;
    // Whatever was there described another version of the submission.
    for stale in [REPORT_FILE, HUMAN_FILE, HTML_FILE, ERROR_FILE, FINGERPRINT_FILE] {
        let _ = std::fs::remove_file(folder.join(stale));
    }
    let write = |file: &str, text: &str| {
        write_atomically(&folder.join(file), text)
            .map_err(|e| format!("cannot write {}: {e}", folder.join(file).display()))
    };
    let fingerprint = match fingerprint {
        Ok(f) => f,
        Err(e) => {
            let why = format!("cannot read the submission: {e}");
            write(ERROR_FILE, &format!("{why}\n"))?;
            return Err(why);
        }
    };
    let sources = fingerprint::of_sources(dir);
    let kept_dir = out.join(KEPT_BUILDS).join(name);
    let kept = sources
        .as_ref()
        .ok()
        .map(|key| crate::submission::KeptBuild { dir: &kept_dir, key });
    let source = match &kept {
        Some(kept) => Source::Kept(dir, kept),
        None => Source::Submission(dir),
    };
    match grade::grade(spec, source, name.to_string(), run) {
        Ok(result) => {
            // The JSON report is the instructor's record (and what the
            // summary reads): never redacted, whoever report.txt is for.
            let record = Style {
                for_students: false,
                ..*style
            };
            write(REPORT_FILE, &report::render(Format::Json, &result, &record))?;
            let human = Style { color: false, ..*style };
            write(HUMAN_FILE, &report::render(Format::Human, &result, &human))?;
            write(HTML_FILE, &report::render(Format::Html, &result, &human))?;
            write(FINGERPRINT_FILE, &fingerprint)?;
            Ok(true)
        }
        Err(e) => {
            write(ERROR_FILE, &format!("{e}\n"))?;
            Err(e.to_string())
        }
    }
}

/// Submissions in flight for each share of the cores: the others wait on
/// the clock (a client's 5 s timeout, an idle connection kept open).
const IN_FLIGHT_PER_SHARE: usize = 4;

/// The shares of the cores (`--jobs` of them), taken by submissions.
struct Cores {
    free: Mutex<usize>,
    given_back: std::sync::Condvar,
}

impl Cores {
    fn new(shares: usize) -> std::sync::Arc<Cores> {
        std::sync::Arc::new(Cores {
            free: Mutex::new(shares),
            given_back: std::sync::Condvar::new(),
        })
    }

    /// Waits for a free share.
    fn take(self: &std::sync::Arc<Cores>) -> Share {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.given_back.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Share(std::sync::Arc::new(Held {
            cores: self.clone(),
            held: std::sync::atomic::AtomicBool::new(true),
        }))
    }
}

/// A share taken: given back once, by whichever comes first of the run's
/// `working_done` and the end of the submission.
struct Share(std::sync::Arc<Held>);

struct Held {
    cores: std::sync::Arc<Cores>,
    held: std::sync::atomic::AtomicBool,
}

impl Held {
    fn give_back(&self) {
        if self.held.swap(false, std::sync::atomic::Ordering::SeqCst) {
            *self.cores.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            self.cores.given_back.notify_one();
        }
    }
}

impl Share {
    fn giver(&self) -> crate::runner::WorkingDone {
        let held = self.0.clone();
        std::sync::Arc::new(move || held.give_back())
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        self.0.give_back();
    }
}

/// Writes through a temporary file in the same folder, so that a reader
/// (or a run that was interrupted) never sees half a file.
pub(crate) fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    // Reports are for whoever may read the folder, not only for us.
    use std::os::unix::fs::PermissionsExt;
    file.as_file().set_permissions(std::fs::Permissions::from_mode(0o644))?;
    std::io::Write::write_all(&mut file, text.as_bytes())?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_parse_and_share_the_class() {
        assert_eq!("2/3".parse::<Partition>(), Ok(Partition { k: 2, n: 3 }));
        for bad in ["0/3", "4/3", "3", "a/b", "1/0"] {
            assert!(bad.parse::<Partition>().is_err(), "{bad}");
        }
        let class: Vec<usize> = (0..7).collect();
        let shares: Vec<Vec<usize>> = (1..=3)
            .map(|k| share(class.clone(), Some(Partition { k, n: 3 })))
            .collect();
        assert_eq!(shares, [vec![0, 3, 6], vec![1, 4], vec![2, 5]]);
    }
}
