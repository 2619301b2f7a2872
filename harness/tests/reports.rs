//! The platform reports, each checked against its consumer's rules (see
//! shared/platforms.md): Gradescope's results.json against a schema
//! transcribed from its docs, Classroom's arithmetic and size limit,
//! PrairieLearn's score range, visibility and size limit, JUnit against the
//! Jenkins xUnit schema. Most build a `RunResult` in-process: reporters run
//! nothing, so nothing needs to run to test them. The last few run the
//! binary for `--output` and the exit-code rule.

mod support;

use harness::lang::Visibility;
use harness::report::{self, Format};
use harness::submission::{Build, BuildStatus};
use harness::verdict::{Failure, ProgramState, RunResult, ScenarioResult, Status};
use serde_json::Value;
use support::{root, sockgrade};

fn scenario(name: &str, status: Status, points: u32, visibility: Visibility) -> ScenarioResult {
    ScenarioResult {
        name: name.to_string(),
        tags: vec!["tcp-echo.server.echo".to_string()],
        status,
        score: if status == Status::Passed { points } else { 0 },
        max_score: points,
        duration_ms: 40,
        visibility,
        hint: None,
        failure: None,
        error: None,
        transcript: format!("     0.4ms  server  start ./echoserver 10352\n    40.0ms          {name}\n"),
        normalised: String::new(),
        events: Vec::new(),
        programs: Vec::new(),
    }
}

/// A failure whose server wrote `stderr` before the step failed.
fn failed(name: &str, points: u32, visibility: Visibility, stderr: &str) -> ScenarioResult {
    let mut s = scenario(name, Status::Failed, points, visibility);
    s.hint = Some("a server serves clients at the same time".to_string());
    s.failure = Some(Failure {
        step: 3,
        keyword: "connect".to_string(),
        line: 186,
        description: "open 63 connections one after the other (c#1 to c#63)".to_string(),
        detail: "connection 34 of 63: refused".to_string(),
        // The scenario's tags: no precondition failed first.
        clauses: vec!["tcp-echo.server.echo".to_string()],
        precondition: None,
        observed: None,
        programs: vec![ProgramState {
            name: "server".to_string(),
            state: "running".to_string(),
            end_expected: false,
            stderr_tail: stderr.to_string(),
            exit: None,
        }],
        events: 0..0,
    });
    s
}

fn run(build: BuildStatus, scenarios: Vec<ScenarioResult>) -> RunResult {
    RunResult {
        lab: "tcp-echo".to_string(),
        spec: "specs/tcp-echo.yaml".to_string(),
        submission: "fixtures/submissions/example".to_string(),
        score: scenarios.iter().map(|s| s.score).sum(),
        max_score: scenarios.iter().map(|s| s.max_score).sum(),
        build: Build {
            status: build,
            output: "cc -Wall -O2 -o echoserver echoserver.c\n#include <stdio.h> is fine\n".to_string(),
        },
        scenarios,
        walls: Default::default(),
        isolation: "none".to_string(),
        duration_ms: 2081,
    }
}

/// Four scenarios: one of each status, and a failure hidden until the due date.
fn sample() -> RunResult {
    let mut error = scenario("client missing", Status::Error, 1, Visibility::Visible);
    error.error = Some("the submission builds no `echoclient`".to_string());
    error.transcript = String::new();
    run(
        BuildStatus::Ok,
        vec![
            scenario(
                "framing: a request split into single bytes is echoed",
                Status::Passed,
                2,
                Visibility::Visible,
            ),
            failed(
                "concurrent: 64 clients at once are served",
                3,
                Visibility::Visible,
                "accept: EMFILE\n",
            ),
            error,
            failed("hidden: 1000 clients", 5, Visibility::AfterDueDate, ""),
        ],
    )
}

fn render(format: Format, run: &RunResult) -> String {
    report::render(format, run, &report::Style::default())
}

fn render_with(format: Format, run: &RunResult, style: report::Style) -> String {
    report::render(format, run, &style)
}

fn json(format: Format, run: &RunResult) -> Value {
    let text = render(format, run);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{format:?} is not JSON ({e}):\n{text}"))
}

/// A scenario whose failure text is `size` bytes long.
fn huge(name: &str, size: usize) -> ScenarioResult {
    failed(name, 1, Visibility::Visible, &"x".repeat(size))
}

// ---- Gradescope ----

/// The little of JSON Schema the transcribed schema uses: type, enum,
/// required, properties, items.
fn validate(schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(t) = schema["type"].as_str() {
        let ok = match t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            other => panic!("the validator does not know type {other}"),
        };
        if !ok {
            errors.push(format!("{at}: expected {t}, got {value}"));
        }
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            errors.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    for key in schema["required"].as_array().into_iter().flatten() {
        if value.get(key.as_str().unwrap()).is_none() {
            errors.push(format!("{at}: {key} is missing"));
        }
    }
    if let (Some(properties), Some(object)) = (schema["properties"].as_object(), value.as_object()) {
        for (key, sub) in properties {
            if let Some(v) = object.get(key) {
                validate(sub, v, &format!("{at}.{key}"), errors);
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, v) in array.iter().enumerate() {
            validate(items, v, &format!("{at}[{i}]"), errors);
        }
    }
}

fn assert_gradescope_valid(results: &Value) {
    let text = std::fs::read_to_string(root().join("fixtures/platforms/gradescope-results.schema.json")).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    let mut errors = Vec::new();
    validate(&schema, results, "$", &mut errors);
    assert!(
        errors.is_empty(),
        "results.json breaks Gradescope's spec:\n{}",
        errors.join("\n")
    );
}

#[test]
fn the_schema_validator_rejects_what_gradescope_would() {
    let text = std::fs::read_to_string(root().join("fixtures/platforms/gradescope-results.schema.json")).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    let bad = serde_json::json!({"score": "1", "tests": [{"status": "error", "number": 1, "visibility": "never"}]});
    let mut errors = Vec::new();
    validate(&schema, &bad, "$", &mut errors);
    assert_eq!(errors.len(), 4, "{errors:#?}");
}

#[test]
fn gradescope_results_follow_the_spec() {
    let results = json(Format::Gradescope, &sample());
    assert_gradescope_valid(&results);
    assert_eq!(results["output_format"], "text");
    assert_eq!(results["test_output_format"], "text");
    assert_eq!(results["score"], 2);
    assert_eq!(results["execution_time"], 2.081);
    assert_eq!(results["extra_data"]["lab"], "tcp-echo");
    assert_eq!(results["extra_data"]["isolation"], "none");
    assert!(
        results.get("output").is_none(),
        "a build that succeeded has no top-level output"
    );
    let tests = results["tests"].as_array().unwrap();
    let numbers: Vec<_> = tests.iter().map(|t| t["number"].as_str().unwrap()).collect();
    assert_eq!(numbers, ["1", "2", "3", "4"]);
    let statuses: Vec<_> = tests.iter().map(|t| t["status"].as_str().unwrap()).collect();
    assert_eq!(
        statuses,
        ["passed", "failed", "failed", "failed"],
        "an error is a failure"
    );
    assert_eq!(tests[3]["visibility"], "after_due_date");
    assert_eq!(tests[1]["output"], sample().scenarios[1].message().unwrap().as_str());
    assert_eq!(tests[1]["tags"], serde_json::json!(["tcp-echo.server.echo"]));
}

#[test]
fn gradescope_shows_the_build_output_when_the_build_failed() {
    let mut s = sample();
    s.build.status = BuildStatus::Failed;
    let results = json(Format::Gradescope, &s);
    assert_gradescope_valid(&results);
    let output = results["output"].as_str().unwrap();
    assert!(output.contains("#include <stdio.h>"), "{output}");
}

#[test]
fn gradescope_snapshot() {
    insta::assert_snapshot!(render(Format::Gradescope, &sample()));
}

#[test]
fn gradescope_caps_each_output() {
    let results = json(
        Format::Gradescope,
        &run(BuildStatus::Ok, vec![huge("huge", 10_000_000)]),
    );
    assert_gradescope_valid(&results);
    let output = results["tests"][0]["output"].as_str().unwrap();
    assert!(output.len() <= 8 * 1024, "{} bytes", output.len());
    assert!(output.starts_with("step 3") && output.contains("bytes cut") && output.ends_with("same time\n"));
}

// ---- GitHub Classroom ----

/// What autograding-grading-reporter posts: Σ tests[].score out of max_score.
fn classroom_points(runner: &Value) -> (f64, f64) {
    let total = runner["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["score"].as_f64().unwrap())
        .sum();
    (total, runner["max_score"].as_f64().unwrap())
}

#[test]
fn classroom_points_are_the_score() {
    let runner = json(Format::Classroom, &sample());
    assert_eq!(runner["version"], 1);
    assert_eq!(runner["status"], "fail");
    assert_eq!(classroom_points(&runner), (2.0, 11.0));
    let statuses: Vec<_> = runner["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["pass", "fail", "error", "fail"]);
    assert!(runner["tests"][2]["message"].as_str().unwrap().contains("echoclient"));
}

#[test]
fn classroom_status_is_pass_or_error_by_the_run() {
    let passed = run(
        BuildStatus::Ok,
        vec![scenario("one", Status::Passed, 1, Visibility::Visible)],
    );
    assert_eq!(json(Format::Classroom, &passed)["status"], "pass");
    let broken = run(
        BuildStatus::Timeout,
        vec![scenario("one", Status::Error, 1, Visibility::Visible)],
    );
    assert_eq!(json(Format::Classroom, &broken)["status"], "error");
}

/// Students read Classroom's report (the platform has no visibility): a
/// scenario that is not `visible` keeps its status and points, since the
/// reporter sums them into the grade, but not its name or its failure.
#[test]
fn classroom_hides_what_is_not_visible_but_counts_its_points() {
    let runner = json(Format::Classroom, &sample());
    assert_eq!(classroom_points(&runner), (2.0, 11.0));
    let hidden = &runner["tests"][3];
    assert_eq!(hidden["name"], "scenario 4 (shown after the due date)");
    assert_eq!(hidden["status"], "fail");
    assert_eq!(
        hidden["message"],
        "The details of this scenario are shown after the due date.\n"
    );
    let text = render(Format::Classroom, &sample());
    assert!(!text.contains("1000 clients"), "{text}");
}

/// The document travels base64-encoded in an environment variable (128 KiB
/// at most): one huge failure, or many large ones, must not break it.
#[test]
fn classroom_stays_under_95_kib_however_long_the_failures() {
    let one = run(BuildStatus::Ok, vec![huge("huge", 10_000_000)]);
    let many = run(
        BuildStatus::Ok,
        (0..100).map(|i| huge(&format!("scenario {i}"), 100_000)).collect(),
    );
    for r in [one, many] {
        let text = render(Format::Classroom, &r);
        assert!(text.len() < 95 * 1024, "{} bytes", text.len());
        let runner: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(runner["tests"].as_array().unwrap().len(), r.scenarios.len());
        assert_eq!(classroom_points(&runner), (0.0, r.max_score as f64));
    }
}

// ---- PrairieLearn ----

/// PrairieLearn's own checks (makeGradingResult and the host's size check).
fn assert_prairielearn_valid(text: &str) -> Value {
    assert!(
        text.len() <= 1024 * 1024,
        "{} bytes: over PrairieLearn's 1 MiB",
        text.len()
    );
    let results: Value = serde_json::from_str(text).unwrap();
    if results["gradable"] != false {
        let score = results["score"].as_f64().expect("score is a number");
        assert!((0.0..=1.0).contains(&score), "score {score}");
    }
    for t in results["tests"].as_array().unwrap() {
        assert!(t["points"].is_number() && t["max_points"].is_number(), "{t}");
    }
    results
}

#[test]
fn prairielearn_scores_a_fraction_and_leaves_out_what_is_not_visible() {
    let results = assert_prairielearn_valid(&render(Format::Prairielearn, &sample()));
    assert_eq!(results["gradable"], true);
    let score = results["score"].as_f64().unwrap();
    assert!((score - 2.0 / 11.0).abs() < 1e-9, "{score}");
    let names: Vec<_> = results["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with("hidden")), "{names:?}");
    assert_eq!(names.len(), 3);
    assert!(results["message"].as_str().unwrap().contains("1 more scenario"));
    assert!(results["tests"][1]["message"].as_str().unwrap().contains("refused"));
}

#[test]
fn prairielearn_marks_a_failed_build_not_gradable() {
    let mut s = sample();
    s.build.status = BuildStatus::Failed;
    let results = assert_prairielearn_valid(&render(Format::Prairielearn, &s));
    assert_eq!(results["gradable"], false);
    assert!(results["format_errors"][0].as_str().unwrap().contains("did not build"));
    assert!(results["output"].as_str().unwrap().contains("cc -Wall"));
}

/// The course's other choice: a graded 0 that shows the build output.
#[test]
fn prairielearn_grades_a_failed_build_zero_when_asked() {
    let mut s = sample();
    s.build.status = BuildStatus::Failed;
    for sc in &mut s.scenarios {
        *sc = scenario(&sc.name, Status::Error, sc.max_score, sc.visibility);
        sc.error = Some("the submission did not build (make failed); see the build output".into());
    }
    s.score = 0;
    let style = report::Style {
        build_failure: report::BuildFailure::Zero,
        ..Default::default()
    };
    let results = assert_prairielearn_valid(&render_with(Format::Prairielearn, &s, style));
    assert_eq!(results["gradable"], true);
    assert_eq!(results["score"], 0.0);
    assert!(results["output"].as_str().unwrap().contains("cc -Wall"));
    assert!(results["message"].as_str().unwrap().contains("did not build"));
    let tests = results["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 3, "the visible scenarios, each worth 0");
    assert!(tests.iter().all(|t| t["points"] == 0));
}

#[test]
fn prairielearn_stays_under_1_mib_however_long_the_failures() {
    let mut scenarios: Vec<_> = (0..100).map(|i| huge(&format!("scenario {i}"), 100_000)).collect();
    for s in &mut scenarios {
        s.transcript = "t".repeat(100_000);
    }
    let text = render(Format::Prairielearn, &run(BuildStatus::Ok, scenarios));
    let results = assert_prairielearn_valid(&text);
    assert_eq!(results["tests"].as_array().unwrap().len(), 100);
}

// ---- JUnit ----

#[test]
fn junit_reports_each_scenario_as_a_testcase() {
    let xml = render(Format::Junit, &sample());
    let report = quick_junit::Report::deserialize_from_str(&xml).unwrap();
    assert_eq!(report.test_suites.len(), 1);
    let suite = &report.test_suites[0];
    assert_eq!(suite.name.as_str(), "tcp-echo");
    assert_eq!((suite.tests, suite.failures, suite.errors), (4, 2, 1));
    let concurrent = &suite.test_cases[1];
    assert_eq!(concurrent.classname.as_deref(), Some("tcp-echo"));
    assert_eq!(concurrent.time, Some(std::time::Duration::from_millis(40)));
    match &concurrent.status {
        quick_junit::TestCaseStatus::NonSuccess {
            kind: quick_junit::NonSuccessKind::Failure,
            message,
            ty,
            description,
            ..
        } => {
            assert_eq!(
                message.as_deref(),
                Some("step 3 failed: open 63 connections one after the other (c#1 to c#63)")
            );
            assert_eq!(ty.as_deref(), Some("connect"));
            // The reader trims the body's last newline.
            assert_eq!(
                description.as_deref(),
                Some(sample().scenarios[1].message().unwrap().trim_end())
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(matches!(
        suite.test_cases[2].status,
        quick_junit::TestCaseStatus::NonSuccess {
            kind: quick_junit::NonSuccessKind::Error,
            ..
        }
    ));
    assert!(concurrent.system_out.as_deref().unwrap().contains("start ./echoserver"));
}

/// JUnit is read in CI, by the instructor or, in a student's repository,
/// by the student: all of it by default, redacted `--for-students`.
#[test]
fn junit_for_students_hides_what_is_not_visible() {
    let all = render(Format::Junit, &sample());
    assert!(all.contains("hidden: 1000 clients"));
    let style = report::Style {
        for_students: true,
        ..Default::default()
    };
    let xml = render_with(Format::Junit, &sample(), style);
    assert!(!xml.contains("1000 clients"), "{xml}");
    let parsed = quick_junit::Report::deserialize_from_str(&xml).unwrap();
    let cases = &parsed.test_suites[0].test_cases;
    assert_eq!(cases.len(), 4);
    assert_eq!(cases[3].name.as_str(), "scenario 4 (shown after the due date)");
    assert!(cases[3].system_out.is_none(), "no transcript");
}

/// Gradescope applies visibility itself: it always gets everything.
#[test]
fn gradescope_is_never_redacted() {
    let style = report::Style {
        for_students: true,
        ..Default::default()
    };
    assert_eq!(
        render_with(Format::Gradescope, &sample(), style),
        render(Format::Gradescope, &sample())
    );
}

#[test]
fn junit_snapshot() {
    insta::assert_snapshot!(render(Format::Junit, &sample()));
}

/// The strict check: the schema the Jenkins xUnit plugin validates against.
#[test]
fn junit_validates_against_the_jenkins_xunit_schema() {
    let mut s = sample();
    s.scenarios.push(huge("huge <&> \"quoted\"", 1_000_000));
    // As written: a passed, a failed, an errored scenario and a huge one.
    assert!(s.scenarios.iter().any(|s| s.status == harness::verdict::Status::Error));
    let xml = render(Format::Junit, &s);
    assert!(xml.lines().nth(1).unwrap().starts_with("<testsuites"), "{xml}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.xml");
    std::fs::write(&file, xml).unwrap();
    let out = support::tool("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(root().join("fixtures/platforms/junit-10.xsd"))
        .arg(&file)
        .output()
        .expect("xmllint is not installed: apt-get install libxml2-utils (.ci/run does)");
    assert!(
        out.status.success(),
        "xmllint rejects the report:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- The command line ----

const SPEC: &str = "specs/tcp-echo.yaml";
const ONLY: &str = "one byte at a time";

#[test]
fn output_writes_more_reports_of_the_same_run() {
    let reference = support::reference_dir();
    let dir = tempfile::tempdir().unwrap();
    let gradescope = dir.path().join("results/results.json");
    let junit = dir.path().join("report.xml");
    let out = sockgrade()
        .args([
            "run",
            SPEC,
            "--reference",
            "--reference-dir",
            reference.to_str().unwrap(),
        ])
        .args(["--only", ONLY, "--format", "json"])
        .arg(format!("--output=gradescope={}", gradescope.display()))
        .arg(format!("--output=junit={}", junit.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let name = printed["scenarios"][0]["name"].as_str().unwrap();
    assert!(name.contains(ONLY));
    let results: Value = serde_json::from_str(&std::fs::read_to_string(&gradescope).unwrap()).unwrap();
    assert_gradescope_valid(&results);
    assert_eq!(results["tests"].as_array().unwrap().len(), 1);
    assert_eq!(results["tests"][0]["name"], name);
    let xml = quick_junit::Report::deserialize_from_str(&std::fs::read_to_string(&junit).unwrap()).unwrap();
    assert_eq!(xml.test_suites[0].test_cases[0].name.as_str(), name);
}

/// A submission that does not build exits 1, unless a Gradescope or
/// PrairieLearn report is asked for: those platforms need exit 0.
#[test]
fn a_platform_report_exits_zero_whatever_the_grade() {
    let broken = "fixtures/broken/tcp-echo-build-error";
    let grade = |extra: &[&str]| {
        sockgrade()
            .args(["run", SPEC, "--submission", broken, "--only", ONLY])
            .args(extra)
            .output()
            .unwrap()
    };
    assert_eq!(grade(&["--format", "json"]).status.code(), Some(1));
    let out = grade(&["--format", "gradescope"]);
    assert_eq!(out.status.code(), Some(0));
    let results: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_gradescope_valid(&results);
    assert!(results["output"].as_str().unwrap().contains("did not build"));
    let dir = tempfile::tempdir().unwrap();
    let pl = dir.path().join("results/results.json");
    let out = grade(&["--format", "human", &format!("--output=prairielearn={}", pl.display())]);
    assert_eq!(out.status.code(), Some(0));
    let results = assert_prairielearn_valid(&std::fs::read_to_string(&pl).unwrap());
    assert_eq!(results["gradable"], false);
}

#[test]
fn a_bad_output_is_a_usage_error() {
    for bad in ["gradescope", "pdf=report.pdf", "junit="] {
        sockgrade()
            .args(["run", SPEC, "--reference", "--output", bad])
            .assert()
            .code(2);
    }
}

/// A platform report that could not be written is the harness's failure,
/// never a silent exit 0.
#[test]
fn an_output_that_cannot_be_written_exits_3() {
    sockgrade()
        .args([
            "run",
            SPEC,
            "--submission",
            "fixtures/broken/tcp-echo-build-error",
            "--only",
            ONLY,
        ])
        .args(["--output", "gradescope=/dev/null/results/results.json"])
        .assert()
        .code(3);
}
