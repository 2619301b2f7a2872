//! A scenario is a sealed room: the hostile fixtures (fixtures/hostile/)
//! grade to their honest score, and nothing outside their room is read,
//! written or signalled, in each mode this machine allows:
//!
//! - `root`: as root, with namespaces (a user per scenario, a mount and a
//!   network namespace, Landlock);
//! - `container`: as root without CAP_SYS_ADMIN, as on Gradescope and
//!   PrairieLearn (a user per scenario, Landlock, no namespaces);
//! - `user`: an ordinary user with `--isolation none` (Landlock alone).
//!
//! A mode the machine lacks is skipped with the reason printed.

mod support;

use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::root;

#[derive(Clone, Copy, Debug)]
enum Mode {
    Root,
    Container,
    User,
}

const NOBODY: u32 = 65534;

impl Mode {
    /// The modes this machine allows; the others are said and skipped.
    fn here() -> Vec<Mode> {
        let as_root = nix::unistd::geteuid().is_root();
        let setpriv = std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join("setpriv").is_file()));
        let mut modes = Vec::new();
        if as_root {
            modes.push(Mode::Root);
        } else {
            eprintln!("skipped: modes `root` and `container` (the tests do not run as root)");
        }
        if as_root && setpriv {
            modes.push(Mode::Container);
        } else if as_root {
            eprintln!("skipped: mode `container` (no setpriv to drop CAP_SYS_ADMIN)");
        }
        let exe = Path::new(env!("CARGO_BIN_EXE_sockgrade"));
        if !as_root {
            modes.push(Mode::User);
        } else if !setpriv {
            eprintln!("skipped: mode `user` (no setpriv to become an ordinary user)");
        } else if !reachable_by_others(exe) || !reachable_by_others(&root().join("specs/tcp-echo.yaml")) {
            eprintln!("skipped: mode `user` (an ordinary user can't reach this checkout or its build)");
        } else {
            modes.push(Mode::User);
        }
        modes
    }

    /// `sockgrade ARGS` as this mode runs it.
    fn sockgrade(self, args: &[&str]) -> Command {
        let exe = env!("CARGO_BIN_EXE_sockgrade");
        let as_root = nix::unistd::geteuid().is_root();
        let mut cmd = match self {
            Mode::Root => Command::new(exe),
            Mode::Container => {
                let mut c = Command::new("setpriv");
                c.args(["--bounding-set", "-sys_admin", "--inh-caps", "-sys_admin", "--", exe]);
                c
            }
            Mode::User if as_root => {
                let mut c = Command::new("setpriv");
                let id = NOBODY.to_string();
                c.args(["--reuid", &id, "--regid", &id, "--clear-groups", "--", exe]);
                c
            }
            Mode::User => Command::new(exe),
        };
        cmd.args(args).current_dir(root()).env("NO_COLOR", "1");
        if matches!(self, Mode::User) {
            cmd.args(["--isolation", "none"]);
        }
        cmd
    }

    /// Whether scenarios get a mount namespace (a /dev/shm of their own).
    fn own_mounts(self) -> bool {
        matches!(self, Mode::Root)
    }

    /// Whether the build gets a network namespace (no UDP either).
    fn own_network(self) -> bool {
        matches!(self, Mode::Root)
    }
}

/// Whether a user with no rights of its own may read `path` and pass
/// through every folder above it.
fn reachable_by_others(path: &Path) -> bool {
    let readable = std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0);
    readable
        && path
            .ancestors()
            .skip(1)
            .all(|dir| std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

/// Runs `cmd`, killed if it takes longer than `bound` (a hang is a failure,
/// not a stuck test run).
fn bounded(mut cmd: Command, bound: Duration) -> Output {
    use std::io::Read;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sockgrade starts");
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = err.read_to_end(&mut text);
        text
    });
    let mut stdout = Vec::new();
    let waiter = std::thread::spawn(move || {
        let _ = out.read_to_end(&mut stdout);
        stdout
    });
    let deadline = Instant::now() + bound;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sockgrade did not finish within {bound:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: waiter.join().unwrap(),
        stderr: reader.join().unwrap(),
    }
}

/// A folder every mode may read, and write where `writable`.
fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn open_to_all(path: &Path) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
    if nix::unistd::geteuid().is_root() {
        let _ = std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY));
    }
}

/// Copies a fixture (links as links) into `to`.
fn copy_fixture(fixture: &str, to: &Path) {
    let status = Command::new("cp")
        .args(["-a", "--no-preserve=ownership"])
        .arg(root().join(fixture))
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
    let status = Command::new("chmod").args(["-R", "a+rX"]).arg(to).status().unwrap();
    assert!(status.success());
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}); exit {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// `sockgrade run SPEC --submission DIR --only ONLY --format json` in `mode`.
fn run(mode: Mode, spec: &str, submission: &Path, only: &str) -> Value {
    let submission = submission.to_str().unwrap();
    let cmd = mode.sockgrade(&[
        "run",
        spec,
        "--submission",
        submission,
        "--only",
        only,
        "--format",
        "json",
    ]);
    json_of(&bounded(cmd, Duration::from_secs(180)))
}

/// `sockgrade grade` of the tcp-echo spec's first echo scenario over
/// `class` into `out` (made, and writable by every mode), which must
/// succeed.
fn grade_class(mode: Mode, class: &Path, out: &Path) {
    std::fs::create_dir(out).unwrap();
    open_to_all(out);
    let cmd = mode.sockgrade(&[
        "grade",
        "specs/tcp-echo.yaml",
        "--submissions",
        class.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--only",
        "a line is echoed unchanged",
    ]);
    let output = bounded(cmd, Duration::from_secs(180));
    assert_eq!(
        output.status.code(),
        Some(0),
        "{mode:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn statuses(report: &Value) -> Vec<String> {
    report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| format!("{}: {}", s["status"].as_str().unwrap(), s["name"].as_str().unwrap()))
        .collect()
}

fn sha(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

/// A link `.sockgrade-reference -> .` once made the grader copy its model
/// server over the student's silent one: full marks for `pause()`.
#[test]
fn a_link_does_not_swap_in_the_model_program() {
    for mode in Mode::here() {
        let dir = scratch();
        let sub = dir.path().join("sub");
        copy_fixture("fixtures/hostile/link-swap", &sub);
        let source = sha(&sub.join("udpechoserver.c"));
        let report = run(
            mode,
            "specs/udp-echo.yaml",
            &sub,
            "a datagram comes back with exactly its bytes",
        );
        assert_eq!(report["score"], 0, "{mode:?}: {:?}", statuses(&report));
        assert_eq!(report["scenarios"][0]["status"], "failed", "{mode:?}");
        assert_eq!(sha(&sub.join("udpechoserver.c")), source, "{mode:?}");
        assert!(
            !sub.join("udpechoserver").exists(),
            "{mode:?}: the grader wrote into the submission"
        );
    }
}

/// A program that rewrites an executable of its own copy (`marker`) to
/// behave better in later scenarios: where the scenarios share their
/// executables with the grader's build, the shared file is not the
/// program's to write, and elsewhere each scenario has a copy of its own.
/// Every scenario sees the file as built, and fails as a server that
/// echoes wrong does.
#[test]
fn a_program_does_not_rewrite_what_later_scenarios_run() {
    for mode in Mode::here() {
        let dir = scratch();
        let sub = dir.path().join("sub");
        copy_fixture("fixtures/hostile/rewrite-shared", &sub);
        // Three scenarios, more than the slots: some start after another
        // has ended.
        let report = run(mode, "specs/tcp-echo.yaml", &sub, "echoed");
        let statuses = statuses(&report);
        assert_eq!(statuses.len(), 3, "{mode:?}: {statuses:?}");
        assert!(
            statuses.iter().all(|s| s.starts_with("failed")),
            "{mode:?}: {statuses:?}"
        );
        assert!(
            !sub.join("marker").exists(),
            "{mode:?}: the grader wrote into the submission"
        );
    }
}

/// Links where the grader puts its own files (the model programs, a
/// scenario's docroot) lead it nowhere: nothing appears where they point,
/// and the correct submission behind them passes.
#[test]
fn links_in_a_submission_lead_the_grader_nowhere() {
    for mode in Mode::here() {
        let dir = scratch();
        let victim = dir.path().join("victim");
        std::fs::create_dir(&victim).unwrap();
        open_to_all(&victim);
        for (fixture, spec, only) in [
            (
                "fixtures/submissions/udp-echo-loop",
                "specs/udp-echo.yaml",
                "through a network that loses",
            ),
            (
                "fixtures/submissions/http-threads",
                "specs/http.yaml",
                "GET of a file is 200",
            ),
        ] {
            let sub = dir.path().join(fixture.rsplit('/').next().unwrap());
            copy_fixture(fixture, &sub);
            for name in [".sockgrade-reference", ".sockgrade-docroot"] {
                std::os::unix::fs::symlink(&victim, sub.join(name)).unwrap();
            }
            let report = run(mode, spec, &sub, only);
            assert_eq!(
                report["score"],
                report["max_score"],
                "{mode:?}: {:?}",
                statuses(&report)
            );
            let written: Vec<_> = std::fs::read_dir(&victim)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .collect();
            assert!(written.is_empty(), "{mode:?} {fixture}: the grader wrote {written:?}");
        }
    }
}

/// A Makefile that prints every spec it can reach, then fails: the build
/// output shown to the student holds none.
#[test]
fn the_build_reads_no_spec() {
    for mode in Mode::here() {
        let dir = scratch();
        let sub = dir.path().join("sub");
        copy_fixture("fixtures/hostile/spec-read", &sub);
        let report = run(mode, "specs/tcp-echo.yaml", &sub, "a line is echoed unchanged");
        assert_eq!(report["build"]["status"], "failed", "{mode:?}");
        let output = report["build"]["output"].as_str().unwrap();
        for secret in ["scenarios:", "tcp-echo.server", "programs:"] {
            assert!(
                !output.contains(secret),
                "{mode:?}: the build printed the spec:\n{output}"
            );
        }
    }
}

/// Processes left by the snooping fixture, ended when the test ends.
struct Lingerers;

fn lingerers() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sg-lingerer"))
        .collect()
}

impl Drop for Lingerers {
    fn drop(&mut self) {
        for pid in lingerers() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
    }
}

/// In a class run, a server that looks for the grader, the spec, the class,
/// the reports and the grader's copies finds nothing; the daemon it leaves
/// rewrites no report and kills no grader; it scores what its honest
/// classmate scores.
#[test]
fn a_class_run_shows_a_submission_nothing_of_the_others() {
    let _sweep = Lingerers;
    for mode in Mode::here() {
        let dir = scratch();
        let (class, out) = (dir.path().join("class"), dir.path().join("out"));
        std::fs::create_dir(&class).unwrap();
        std::fs::set_permissions(&class, std::fs::Permissions::from_mode(0o755)).unwrap();
        copy_fixture("fixtures/submissions/tcp-echo-threads", &class.join("alice"));
        std::fs::write(class.join("alice/notes.txt"), "CLASSMATE-SECRET of alice\n").unwrap();
        copy_fixture("fixtures/hostile/snoop-and-linger", &class.join("mallory"));
        grade_class(mode, &class, &out);
        // The daemon tries for two seconds; as root it dies with its
        // scenario, as an ordinary user it may outlive the run.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !lingerers().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(lingerers().is_empty(), "{mode:?}: the daemon did not end");
        let report = std::fs::read_to_string(out.join("mallory/report.json")).unwrap();
        let honest = std::fs::read_to_string(out.join("alice/report.json")).unwrap();
        let (report, honest): (Value, Value) = (
            serde_json::from_str(&report).unwrap(),
            serde_json::from_str(&honest).unwrap(),
        );
        assert_eq!(report["score"], honest["score"], "{mode:?}: {:?}", statuses(&report));
        assert_eq!(report["score"], report["max_score"], "{mode:?}");
        let transcript = report["scenarios"][0]["transcript"].as_str().unwrap();
        assert!(transcript.contains("./echoserver"), "{transcript}");
        assert!(!transcript.contains("FOUND"), "{mode:?}: the spy found:\n{transcript}");
        for file in [
            "summary.csv",
            "mallory/report.json",
            "mallory/report.txt",
            "alice/report.json",
        ] {
            let text = std::fs::read_to_string(out.join(file)).unwrap();
            assert!(!text.contains("forged"), "{mode:?}: {file} was rewritten");
        }
    }
}

/// A Makefile that sends the submission away: nothing arrives by TCP in
/// any mode, nor by UDP where the build has a network of its own.
#[test]
fn the_build_has_no_network() {
    for mode in Mode::here() {
        let dir = scratch();
        let sub = dir.path().join("sub");
        copy_fixture("fixtures/hostile/build-network", &sub);
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        let udp = std::net::UdpSocket::bind(("127.0.0.1", port)).ok();
        std::fs::write(sub.join("port.txt"), port.to_string()).unwrap();
        std::fs::set_permissions(sub.join("port.txt"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let report = run(mode, "specs/tcp-echo.yaml", &sub, "a line is echoed unchanged");
        assert_eq!(
            report["score"],
            report["max_score"],
            "{mode:?}: {:?}",
            statuses(&report)
        );
        tcp.set_nonblocking(true).unwrap();
        assert!(tcp.accept().is_err(), "{mode:?}: the build connected by TCP");
        if let Some(udp) = udp {
            udp.set_nonblocking(true).unwrap();
            let got = udp.recv(&mut [0; 64]).is_ok();
            if mode.own_network() {
                assert!(!got, "{mode:?}: the build sent a datagram");
            } else if got {
                eprintln!("{mode:?}: the build's datagram arrived (no network namespace here: a wall the report says is missing)");
            }
        }
    }
}

/// A FIFO handed in, and one and a sparse file left by the build: the
/// grader neither blocks nor fills the disk, and says what it left out.
#[test]
fn fifos_and_sparse_files_are_neither_followed_nor_filled() {
    for mode in Mode::here() {
        let dir = scratch();
        let class = dir.path().join("class");
        std::fs::create_dir(&class).unwrap();
        std::fs::set_permissions(&class, std::fs::Permissions::from_mode(0o755)).unwrap();
        let sub = class.join("fifo");
        copy_fixture("fixtures/hostile/fifo-and-sparse", &sub);
        nix::unistd::mkfifo(
            &sub.join("handed-in.fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        let out = dir.path().join("out");
        grade_class(mode, &class, &out);
        let report: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("fifo/report.json")).unwrap()).unwrap();
        assert_eq!(
            report["score"],
            report["max_score"],
            "{mode:?}: {:?}",
            statuses(&report)
        );
        let build = report["build"]["output"].as_str().unwrap();
        assert!(
            build.contains("not copied") && build.contains("handed-in.fifo"),
            "{mode:?}: {build}"
        );
    }
}

/// A folder for the user ids' locks that root does not own alone is
/// refused with a clear error, and what its links point to is untouched.
#[test]
fn a_lock_folder_made_by_someone_else_is_refused() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: only root takes user ids, and so locks");
        return;
    }
    let dir = scratch();
    let (locks, victim) = (dir.path().join("locks"), dir.path().join("victim"));
    std::fs::write(&victim, "precious\n").unwrap();
    std::fs::create_dir(&locks).unwrap();
    open_to_all(&locks);
    for uid in 64_000..64_010 {
        std::os::unix::fs::symlink(&victim, locks.join(uid.to_string())).unwrap();
    }
    let mut cmd = Mode::Root.sockgrade(&[
        "run",
        "specs/tcp-echo.yaml",
        "--submission",
        "fixtures/submissions/tcp-echo-threads",
        "--only",
        "a line is echoed unchanged",
    ]);
    cmd.env("SOCKGRADE_UID_LOCKS", &locks);
    let output = bounded(cmd, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("is not a folder of root's"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
}

/// A named semaphore another scenario (or an earlier run) left in the
/// machine's /dev/shm is not in a scenario's own.
#[test]
fn a_named_semaphore_sees_only_its_scenarios_dev_shm() {
    let left = PathBuf::from("/dev/shm/sem.sockgrade-sealed-probe");
    for mode in Mode::here() {
        if !mode.own_mounts() {
            eprintln!(
                "skipped in mode {mode:?}: no mount namespace, so /dev/shm is the machine's (the report says so)"
            );
            continue;
        }
        std::fs::write(&left, [0u8; 32]).unwrap();
        let report = run(
            mode,
            "fixtures/sandbox/shm.yaml",
            Path::new("fixtures/sandbox/probe"),
            "",
        );
        let _ = std::fs::remove_file(&left);
        for s in report["scenarios"].as_array().unwrap() {
            assert_eq!(s["status"], "passed", "{mode:?} {}: {}", s["name"], s["message"]);
        }
    }
}

/// A full disk is an `error` that says so, for every scenario it stops,
/// never a hang (it once left the grader waiting forever) nor the
/// student's failure.
#[test]
fn a_full_disk_is_an_error_that_says_so() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: only root mounts the small file system this needs");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let dir = scratch();
    let tiny = dir.path().join("tiny");
    std::fs::create_dir(&tiny).unwrap();
    // Room for the build, not for the scenarios' copies.
    nix::mount::mount(
        Some("tmpfs"),
        &tiny,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=200k"),
    )
    .unwrap();
    let _unmount = Unmount(tiny.clone());
    let mut cmd = Mode::Root.sockgrade(&[
        "run",
        "specs/tcp-echo.yaml",
        "--submission",
        "fixtures/submissions/tcp-echo-threads",
        "--format",
        "json",
    ]);
    cmd.env("TMPDIR", &tiny);
    let report = json_of(&bounded(cmd, Duration::from_secs(120)));
    let errors: Vec<&Value> = report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "error")
        .collect();
    assert!(!errors.is_empty(), "{:?}", statuses(&report));
    for s in errors {
        let message = s["message"].as_str().unwrap_or_default();
        assert!(message.contains("No space left on device"), "{message}");
    }
}
