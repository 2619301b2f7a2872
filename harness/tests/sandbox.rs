//! The sandbox's promises, checked from the outside with a probe that looks
//! around and tries to get out (fixtures/sandbox/probe, scenarios in
//! fixtures/sandbox/sandbox.yaml): descriptors, environment, limits, a flood
//! of output, a daemon in its own session, a fork bomb.

mod support;

use std::os::fd::AsRawFd;
use support::run_json;

/// Processes whose command line starts with `./probe`: anything the probe
/// started that is still around.
fn probes() -> Vec<(i32, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let words: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect();
        if words.first().map(String::as_str) == Some("./probe") {
            out.push((pid, words.join(" ")));
        }
    }
    out
}

/// Ends survivors when the test ends, passing or not.
struct Sweep;

impl Drop for Sweep {
    fn drop(&mut self) {
        for (pid, _) in probes() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
    }
}

#[test]
fn a_submission_gets_nothing_it_should_not_and_leaves_nothing_behind() {
    let _sweep = Sweep;
    // A descriptor left open without close-on-exec, as a shell, cargo's
    // jobserver or a CI runner may leave one: the harness inherits it, the
    // submission must not.
    let (read, write) = nix::unistd::pipe().unwrap();
    assert!(read.as_raw_fd() > 2 && write.as_raw_fd() > 2);

    let (report, code) = run_json(&[
        "fixtures/sandbox/sandbox.yaml",
        "--submission",
        "fixtures/sandbox/probe",
    ]);
    drop((read, write));
    for s in report["scenarios"].as_array().unwrap() {
        assert_eq!(s["status"], "passed", "{}: {}", s["name"], s["message"]);
    }
    assert_eq!(code, 0);

    // The flood was counted, not kept: the report stays small.
    let flood = &report["scenarios"][3]["transcript"];
    assert!(flood.as_str().unwrap().contains("bytes before]"), "{flood}");
    assert!(report.to_string().len() < 1 << 20);

    // The daemon said who it was; it must be gone, with everything else the
    // probe started (the fork bomb's 500 children included).
    let escape = report["scenarios"][4]["transcript"].as_str().unwrap();
    assert!(escape.contains("stdout: \"daemon "), "{escape}");
    let left = probes();
    let root = nix::unistd::geteuid().is_root();
    if root {
        // The scenario's user may have 512 processes: fork() failed there.
        let bomb = report["scenarios"][5]["transcript"].as_str().unwrap();
        let forked: usize = bomb
            .split("stdout: \"forked ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count in {bomb}"));
        assert!(forked < 512, "{bomb}");
    }
    if root {
        assert!(left.is_empty(), "outlived their scenarios: {left:?}");
    } else {
        // Without root there is no scenario user to sweep: a daemon in its
        // own session can escape (docs/design/submission.md, "Sandbox"). Nothing else may.
        assert!(
            left.iter().all(|(_, cmd)| cmd == "./probe escape"),
            "outlived their scenarios: {left:?}"
        );
    }
}
