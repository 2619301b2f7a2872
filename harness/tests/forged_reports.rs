//! A submission that prints a forged report: terminal escapes, carriage
//! returns and a bidi override on its stderr must reach the human report
//! escaped, so that they cannot redraw its verdicts or its score.

mod support;

use support::sockgrade;

#[test]
fn a_forged_report_on_stderr_is_shown_escaped() {
    let out = sockgrade()
        .args([
            "run",
            "specs/tcp-echo.yaml",
            "--submission",
            "fixtures/hostile/escapes-stderr",
            "--only",
            "64 clients",
            "--format",
            "human",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).expect("the human report is UTF-8");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the iterative server fails\n{text}\n{stderr}"
    );
    // The forged report is in the failure, escaped.
    assert!(text.contains(r"\r\x1b[2K\x1b[1A\x1b[2KPASS  64 clients"), "{text}");
    assert!(text.contains(r"\u{202e}05/45 :erocs\u{9b}2J"), "{text}");
    // None of its control characters made it through.
    assert!(!text.as_bytes().contains(&0x1b), "{text:?}");
    assert!(!text.contains('\r'), "{text:?}");
    assert!(!text.contains(['\u{202e}', '\u{9b}']), "{text:?}");
    // The only score, and the only verdict, at the start of a line are the real ones.
    let scores: Vec<&str> = text.lines().filter(|l| l.starts_with("score:")).collect();
    assert_eq!(scores, ["score: 0/3 (0 of 1 scenarios passed)"], "{text}");
    let verdicts: Vec<&str> = text
        .lines()
        .filter(|l| ["PASS", "FAIL", "ERROR"].iter().any(|w| l.starts_with(w)))
        .collect();
    assert_eq!(verdicts.len(), 1, "{text}");
    assert!(verdicts[0].starts_with("FAIL  64 clients at once"), "{text}");
}
