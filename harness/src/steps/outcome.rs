//! How a step ends when it does not pass: the one typed outcome every step
//! returns. A failure is the student's and carries what the step observed;
//! an error is the grader's (or the machine's) and is never charged to the
//! student. No text becomes either by itself: each place that gives up
//! says which it is (`StepError::failed`, `StepError::cannot_run`, or
//! `Failing` on a helper's `Result<_, String>`).

use crate::verdict::{Observed, Precondition};
use std::time::SystemTime;

/// What a step returns.
pub(crate) type StepResult = Result<(), StepError>;

/// Why a step did not pass.
#[derive(Debug)]
pub(crate) enum StepError {
    /// The program did not do what the step expects: the scenario fails.
    /// (Boxed: a step's `Result` stays small on the way up.)
    Failed(Box<Failure>),
    /// The scenario can't run (the submission lacks the program, the
    /// machine refused the grader a socket, the spec names what its steps
    /// never opened): an `error` in the report, not the student's points.
    CannotRun(String),
}

/// What the program did instead of what the step expects.
#[derive(Debug)]
pub(crate) struct Failure {
    /// What was expected, and what arrived, in words.
    pub detail: String,
    /// What the step saw fail of a precondition, a clause every scenario
    /// relies on (see `verdict`): the failure is that clause's.
    pub precondition: Option<Precondition>,
    /// What the step saw of the cause in the kernel (see `verdict`): the
    /// hint speaks of it.
    pub observed: Option<Observed>,
    /// When the step saw what failed it, where the kernel stamped it (a
    /// datagram's arrival); else when the step ended. See `steps::run`.
    pub seen_at: Option<SystemTime>,
}

impl Failure {
    /// A failure that says only what was expected and what arrived.
    pub fn of(detail: impl Into<String>) -> Failure {
        Failure {
            detail: detail.into(),
            precondition: None,
            observed: None,
            seen_at: None,
        }
    }
}

impl StepError {
    /// The program did not do what the step expects: `detail` says what
    /// was expected and what arrived.
    pub fn failed(detail: impl Into<String>) -> StepError {
        StepError::Failed(Box::new(Failure::of(detail)))
    }

    /// The grader could not run the step: `why` says what to fix, and whose
    /// it is to fix.
    pub fn cannot_run(why: impl Into<String>) -> StepError {
        StepError::CannotRun(why.into())
    }

    /// A system call of the grader's own socket failed: the program's doing
    /// when the kernel says so of the far end (a reset, a refusal), the
    /// machine's when it is out of something the grader needs (descriptors,
    /// buffers, ports).
    pub fn of_socket(what: &str, e: &std::io::Error) -> StepError {
        use nix::libc;
        let words = format!("{what} failed: {}", crate::escape::os_error(e));
        match e.raw_os_error() {
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EADDRNOTAVAIL) => {
                StepError::cannot_run(format!(
                    "the grader's {words}: the machine is short of it, not the program"
                ))
            }
            _ => StepError::failed(words),
        }
    }

    /// A failure with what the step saw of the cause (nothing changes for an
    /// error, or when it saw nothing).
    pub fn observed(mut self, observed: Option<Observed>) -> StepError {
        if let (StepError::Failed(f), Some(o)) = (&mut self, observed) {
            f.observed = Some(o);
        }
        self
    }

    /// A failure that is a precondition's (as `observed`).
    pub fn precondition(mut self, precondition: Option<Precondition>) -> StepError {
        if let (StepError::Failed(f), Some(p)) = (&mut self, precondition) {
            f.precondition = Some(p);
        }
        self
    }

    /// A failure seen at `at`, as the kernel stamped it.
    pub fn seen_at(mut self, at: SystemTime) -> StepError {
        if let StepError::Failed(f) = &mut self {
            f.seen_at = Some(at);
        }
        self
    }

    /// The failure, if it is one.
    pub fn failure_mut(&mut self) -> Option<&mut Failure> {
        match self {
            StepError::Failed(f) => Some(f),
            StepError::CannotRun(_) => None,
        }
    }
}

/// Says, where a helper's `Result<_, String>` reaches a step, whose its
/// error is.
pub(crate) trait Failing<T> {
    /// The program's doing: the student's failure.
    fn or_failed(self) -> Result<T, StepError>;
    /// The grader's: an error.
    fn or_cannot_run(self) -> Result<T, StepError>;
}

impl<T> Failing<T> for Result<T, String> {
    fn or_failed(self) -> Result<T, StepError> {
        self.map_err(StepError::failed)
    }
    fn or_cannot_run(self) -> Result<T, StepError> {
        self.map_err(StepError::cannot_run)
    }
}
