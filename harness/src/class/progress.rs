//! The progress line of a class run, on stderr and only on a terminal (a
//! log or a CI job gets the totals at the end instead):
//! `[12/40] 3 grading: alice, bob, carol`.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

pub struct Progress {
    total: usize,
    state: Option<Mutex<State>>,
}

struct State {
    done: usize,
    running: Vec<String>,
}

impl Progress {
    pub fn new(total: usize) -> Progress {
        Progress {
            total,
            state: std::io::stderr().is_terminal().then(|| {
                Mutex::new(State {
                    done: 0,
                    running: Vec::new(),
                })
            }),
        }
    }

    pub fn started(&self, name: &str) {
        self.update(|s| s.running.push(name.to_string()));
    }

    pub fn finished(&self, name: &str) {
        self.update(|s| {
            s.running.retain(|n| n != name);
            s.done += 1;
        });
    }

    /// Erases the line, so what is printed next starts clean.
    pub fn clear(&self) {
        if self.state.is_some() {
            eprint!("\r\x1b[2K");
        }
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        let Some(state) = &self.state else {
            return;
        };
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut s);
        let mut line = format!(
            "[{}/{}] {} grading: {}",
            s.done,
            self.total,
            s.running.len(),
            crate::escape::for_terminal_line(&s.running.join(", "))
        );
        // One line, whatever the names: a wrapped line cannot be redrawn.
        if line.chars().count() > 100 {
            line = line.chars().take(99).collect::<String>() + "…";
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
    }
}
