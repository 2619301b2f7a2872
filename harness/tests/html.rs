//! `--format html` end to end: a failing submission's report, written by
//! `--output html=PATH` from the same run as the JSON on stdout, read by
//! Python's html.parser (`support/html_check.py`) and opened in a real
//! headless Chromium (Debian's `chromium`, which .ci/setup installs): it loads
//! with no console message (the page's Content-Security-Policy makes
//! Chromium log any request or script it blocks), the diagram is in the
//! rendered DOM, and a screenshot shows it.
//!
//! The submission sits in a directory named like an HTML injection, and its
//! name is printed in the report: a real run's untrusted text, end to end.

mod support;

use std::path::{Path, PathBuf};
use support::{root, sockgrade};

/// Chromium, or a failure that says how to get it: this test is the only
/// one that checks the page in a browser, so it never passes without one.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return PathBuf::from(path);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "Chromium is needed to check the HTML report in a browser and is not on PATH: \
             run `.ci/setup` (as root), which installs Debian's `chromium`, or set CHROMIUM to its path"
        )
    })
}

/// Runs headless Chromium on `page` with `args`; returns stdout and stderr.
fn run_chromium(page: &Path, profile: &Path, args: &[&str]) -> (String, String) {
    // Bounded: a browser that hangs must fail the test, not stall CI.
    let out = support::tool("timeout")
        .arg("120")
        .arg(chromium())
        .args(["--headless", "--disable-gpu", "--no-sandbox", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--enable-logging=stderr", "--v=0"])
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "chromium failed ({}):\n{stderr}", out.status);
    (String::from_utf8_lossy(&out.stdout).to_string(), stderr)
}

/// `support/html_check.py MODE FILE ARGS...`: its JSON, and whether it passed.
fn check(mode: &str, file: &Path, args: &[&str]) -> (serde_json::Value, bool) {
    let out = support::tool("python3")
        .arg(root().join("harness/tests/support/html_check.py"))
        .arg(mode)
        .arg(file)
        .args(args)
        .output()
        .expect("python3 runs");
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "html_check.py printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (json, out.status.success())
}

#[test]
fn a_failing_report_loads_in_chromium_and_shows_its_diagram() {
    let work = tempfile::tempdir().unwrap();
    let submission = work.path().join("<img src=x onerror=alert(1)>");
    std::fs::create_dir(&submission).unwrap();
    let fixture = root().join("fixtures/submissions/tcp-echo-iterative");
    for entry in std::fs::read_dir(&fixture).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), submission.join(entry.file_name())).unwrap();
    }
    let report = work.path().join("report.html");
    let out = sockgrade()
        .args(["run", "specs/tcp-echo.yaml", "--submission"])
        .arg(&submission)
        .args(["--only", "a client that never reads", "--format", "json", "--output"])
        .arg(format!("html={}", report.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["scenarios"][0]["status"], "failed",
        "the fixture no longer fails: {json}"
    );

    // A real parser reads it whole, and finds nothing that fetches or runs.
    let (page, ok) = check("page", &report, &[]);
    assert!(ok, "the report is not well formed: {}", page["problems"]);
    assert_eq!(page["counts"]["svg"], 1);
    assert!(page["text"]
        .as_str()
        .unwrap_or_default()
        .contains("<img src=x onerror=alert(1)>"));

    // Chromium loads it without a single console message, and renders the
    // diagram: its lifelines, the failing step's band, the side by side.
    let profile = work.path().join("chromium-profile");
    let (dom, log) = run_chromium(&report, &profile, &["--dump-dom"]);
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages:\n{}", console.join("\n"));
    assert!(dom.contains("<svg class=\"seq\""), "no diagram in the DOM:\n{dom}");
    assert!(dom.contains("✗ step 6 failed: wait for"), "no failure band in the DOM");
    assert!(dom.contains("class=\"failrow\""));
    assert!(dom.contains("<table class=\"sbs\">"));
    assert!(!dom.contains("<img"), "the directory's name became an element");

    // The screenshot shows it: many colours, and the failing step's tinted
    // row (a colour only the diagram uses) across the picture.
    let shot = work.path().join("report.png");
    run_chromium(
        &report,
        &profile,
        &[&format!("--screenshot={}", shot.display()), "--window-size=1200,1400"],
    );
    let (png, _) = check("png", &shot, &["ffe5e5"]);
    assert!(
        png["colours"].as_u64().unwrap_or(0) > 20,
        "a near-blank screenshot: {png}"
    );
    let tinted = png["pixels"]["ffe5e5"].as_u64().unwrap_or(0);
    assert!(
        tinted > 10_000,
        "the failing step's row is not on the screenshot: {png}"
    );
}

#[test]
fn a_build_failure_is_printed_with_the_compiler_output_unfolded() {
    let out = sockgrade()
        .args([
            "run",
            "specs/tcp-echo.yaml",
            "--submission",
            "fixtures/broken/tcp-echo-build-error",
        ])
        .args(["--only", "a line is echoed unchanged", "--format", "html"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let page = String::from_utf8(out.stdout).unwrap();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("report.html");
    std::fs::write(&file, &page).unwrap();
    let (json, ok) = check("page", &file, &[]);
    assert!(ok, "{}", json["problems"]);
    assert!(page.contains("<details open><summary>build: <span class=\"bad\">failed</span>"));
    // The compiler quotes the source: its quotes and brackets are text.
    assert!(page.contains("error: expected &#39;;&#39;"), "{page}");
    assert!(page.contains("<span class=\"err\">ERROR</span>"));
    assert!(!page.contains("<svg"), "a scenario that never ran has nothing to draw");
}
