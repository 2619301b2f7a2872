//! The `sockgrade` command line.
//!
//! Exit status: 0 everything passed, 1 something failed (a build failure
//! included), 2 the command line or the spec is invalid, 3 the harness failed.
//! With a gradescope or prairielearn report (printed or written), 0 once the
//! reports are written, whatever the grade: those platforms read the grade
//! from the file, and PrairieLearn discards it when the grader exits non-zero.
//! `grade` (a class) exits 0 once every submission has its reports, whatever
//! the grades.

use clap::{Parser, Subcommand};
use harness::class::{self, rows, summary, ClassOptions, Partition};
use harness::grade::{self, Source};
use harness::isolation::Isolation;
use harness::lang;
use harness::listing;
use harness::report::{self, BuildFailure, Format};
use harness::runner::Options;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "sockgrade", version, about = "Grades socket-programming labs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a spec's scenarios against a submission (or the reference programs).
    Run(RunArgs),
    /// Grade every directory under PARENT as a submission: a folder of
    /// reports per submission under OUT, and OUT/summary.csv.
    Grade {
        /// The lab's spec (YAML).
        spec: PathBuf,
        /// The directory whose subdirectories are the submissions.
        #[arg(long, value_name = "PARENT")]
        submissions: PathBuf,
        /// Where each submission's folder and summary.csv go. A second run
        /// over the same OUT regrades only what changed.
        #[arg(long, value_name = "OUT")]
        out: PathBuf,
        /// Submissions graded at the same time.
        #[arg(long, short = 'j', default_value_t = default_jobs())]
        jobs: usize,
        /// Grade only the K-th of N shares of the class (in name order);
        /// `sockgrade summary OUT` then sums up the shards.
        #[arg(long, value_name = "K/N")]
        partition: Option<Partition>,
        /// Grade although this machine lacks the walls that keep a
        /// submission from the spec, the reports and its classmates (the
        /// submissions are trusted, or the machine is theirs alone).
        #[arg(long)]
        without_walls: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Rebuild OUT/summary.csv from the submissions' folders (after the
    /// shards of a partitioned class are gathered in OUT).
    Summary {
        /// The folder `grade` wrote.
        out: PathBuf,
    },
    /// Check a spec without running anything.
    Check { spec: PathBuf },
    /// Print the JSON Schema of the spec language (for editors).
    Schema,
    /// List a spec's scenarios: points, visibility, clause ids, and the totals.
    List {
        spec: PathBuf,
        #[arg(long, value_enum, default_value_t = ListFormat::Human)]
        format: ListFormat,
    },
}

/// `sockgrade run`'s arguments.
#[derive(clap::Args)]
struct RunArgs {
    /// The lab's spec (YAML).
    spec: PathBuf,
    /// The submission's directory: built with `make` if it has a Makefile.
    #[arg(long, conflicts_with = "reference", required_unless_present = "reference")]
    submission: Option<PathBuf>,
    /// Run against the reference programs instead of a submission.
    #[arg(long)]
    reference: bool,
    /// Where the reference programs are (default: beside this executable):
    /// with --reference, the programs graded; otherwise those a spec runs
    /// beside the submission's (`reference: true`).
    #[arg(long)]
    reference_dir: Option<PathBuf>,
    /// The report printed on stdout.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Also write a report of this run in format F to PATH (repeatable),
    /// e.g. `gradescope=results/results.json`.
    #[arg(long, value_name = "F=PATH", value_parser = parse_output)]
    output: Vec<Output>,
    /// Scenarios run at the same time.
    #[arg(long, short = 'j', default_value_t = default_jobs())]
    jobs: usize,
    /// How a PrairieLearn report grades a submission that does not build.
    #[arg(long, value_enum, default_value_t = BuildFailure::Ungradable)]
    build_failure: BuildFailure,
    #[command(flatten)]
    common: Common,
}

/// Options of every grading command.
#[derive(clap::Args)]
struct Common {
    #[arg(long, value_enum, default_value_t = Isolation::Auto)]
    isolation: Isolation,
    /// Only scenarios whose name contains this (repeatable).
    #[arg(long)]
    only: Vec<String>,
    /// Show the transcript of each failing scenario.
    #[arg(long, short)]
    verbose: bool,
    /// Students read these reports: scenarios that are not `visible` show
    /// their points but not their names or failures (Classroom's report
    /// always does this; Gradescope's never needs to).
    #[arg(long)]
    for_students: bool,
}

impl Common {
    fn style(&self, color: bool) -> report::Style {
        report::Style {
            color,
            verbose: self.verbose,
            for_students: self.for_students,
            build_failure: BuildFailure::default(),
        }
    }
}

/// What `list` prints.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ListFormat {
    /// A table, then the totals.
    Human,
    /// The same, for tools.
    Json,
}

/// One `--output F=PATH`.
#[derive(Clone, Debug)]
struct Output {
    format: Format,
    path: PathBuf,
}

fn parse_output(arg: &str) -> Result<Output, String> {
    use clap::ValueEnum;
    let (format, path) = arg
        .split_once('=')
        .ok_or_else(|| format!("expected F=PATH, e.g. junit=report.xml, not `{arg}`"))?;
    let format = Format::from_str(format, false).map_err(|_| {
        let known: Vec<String> = Format::value_variants()
            .iter()
            .filter_map(|f| f.to_possible_value().map(|v| v.get_name().to_string()))
            .collect();
        format!("unknown format `{format}` (one of {})", known.join(", "))
    })?;
    if path.is_empty() {
        return Err(format!("no path after the `=` in `{arg}`"));
    }
    Ok(Output {
        format,
        path: PathBuf::from(path),
    })
}

fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8)
}

fn color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("SOCKGRADE_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Schema => {
            print!("{}", lang::schema());
            Ok(ExitCode::SUCCESS)
        }
        Command::List { spec: path, format } => load_spec(&path).map(|s| {
            print!(
                "{}",
                match format {
                    ListFormat::Human => listing::human(&s),
                    ListFormat::Json => listing::json(&s),
                }
            );
            ExitCode::SUCCESS
        }),
        Command::Check { spec: path } => load_spec(&path).map(|s| {
            let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
            println!(
                "{}: {}, {}: ok",
                path.display(),
                count(s.programs.len(), "program"),
                count(s.scenarios.len(), "scenario")
            );
            ExitCode::SUCCESS
        }),
        Command::Run(args) => run(&args),
        Command::Grade {
            spec,
            submissions,
            out,
            jobs,
            partition,
            without_walls,
            common,
        } => grade_class(&spec, &submissions, &out, jobs, partition, without_walls, &common),
        Command::Summary { out } => write_summary(&out).map(|()| ExitCode::SUCCESS),
    };
    result.unwrap_or_else(|code| code)
}

/// `sockgrade run`.
fn run(args: &RunArgs) -> Result<ExitCode, ExitCode> {
    let RunArgs {
        spec: path,
        submission,
        reference,
        reference_dir,
        format,
        output,
        jobs,
        build_failure,
        common,
    } = args;
    let (format, jobs) = (*format, *jobs);
    let style = |color| report::Style {
        build_failure: *build_failure,
        ..common.style(color)
    };
    let spec = load_spec(path)?;
    let options = Options {
        jobs,
        isolation: resolve(common.isolation)?,
        filter: common.only.clone(),
        reference_dir: reference_dir.clone(),
        working_done: None,
    };
    let (source_dir, label);
    let source = match reference.then_some(reference_dir) {
        Some(dir) => {
            source_dir = dir.clone().unwrap_or_else(grade::default_reference_dir);
            label = "reference".to_string();
            Source::Reference(&source_dir)
        }
        None => {
            source_dir = submission
                .clone()
                .ok_or_else(|| fail(2, "--submission or --reference is needed"))?;
            label = source_dir.display().to_string();
            Source::Submission(&source_dir)
        }
    };
    let report = grade::grade(&spec, source, label, &options).map_err(|e| match e {
        grade::Error::Input(e) => fail(2, &e),
        grade::Error::Harness(e) => fail(3, &e),
    })?;
    // Files first: a platform reads its file, and a failure to write one is
    // the harness's failure, whatever stdout says.
    for o in output {
        let text = report::render(o.format, &report, &style(false));
        write_report(&o.path, &text).map_err(|e| fail(3, &format!("cannot write {}: {e}", o.path.display())))?;
    }
    print!("{}", report::render(format, &report, &style(color())));
    let exits_zero = std::iter::once(format)
        .chain(output.iter().map(|o| o.format))
        .any(Format::exits_zero);
    Ok(if report.all_passed() || exits_zero {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `sockgrade grade`: the class, then its summary (unless this is one
/// shard: shards may share OUT, and only `summary` after the last one sees
/// them all).
fn grade_class(
    path: &Path,
    parent: &Path,
    out: &Path,
    jobs: usize,
    partition: Option<Partition>,
    without_walls: bool,
    common: &Common,
) -> Result<ExitCode, ExitCode> {
    let spec = load_spec(path)?;
    let walls = harness::room::Walls::here();
    if !walls.sealed() && !without_walls {
        let missing = walls
            .missing(true)
            .iter()
            .map(|m| format!("\n  - {m}"))
            .collect::<String>();
        return Err(fail(
            2,
            &format!(
                "this machine lacks walls that keep a submission from the spec, the reports and its classmates:{missing}\n\
                 grade as root, or on a kernel with Landlock (Linux 5.13 or later); \
                 or, if the submissions are trusted, say so with --without-walls"
            ),
        ));
    }
    let spec_text =
        std::fs::read_to_string(path).map_err(|e| fail(2, &format!("cannot read {}: {e}", path.display())))?;
    if !parent.is_dir() {
        return Err(fail(
            2,
            &format!("the submissions `{}` are not a directory", parent.display()),
        ));
    }
    let options = ClassOptions {
        jobs,
        run: Options {
            jobs,
            isolation: resolve(common.isolation)?,
            filter: common.only.clone(),
            reference_dir: None,
            working_done: None,
        },
        partition,
        style: common.style(false),
    };
    if partition.is_none() && class::submissions(parent, out).map_err(|e| fail(2, &e))?.is_empty() {
        return Err(fail(2, &format!("no submission (a directory) in {}", parent.display())));
    }
    let outcome = class::grade(&spec, &spec_text, parent, out, &options).map_err(|e| fail(3, &e))?;
    eprintln!(
        "{} submission(s): {} graded, {} unchanged, {} could not be graded",
        outcome.selected,
        outcome.graded,
        outcome.skipped,
        outcome.failed.len()
    );
    for (name, why) in &outcome.failed {
        eprintln!("error: {name}: {why}");
    }
    match partition {
        Some(p) => eprintln!(
            "share {}/{} done; once every share is in {}, run `sockgrade summary {}`",
            p.k,
            p.n,
            out.display(),
            out.display()
        ),
        None => write_summary(out)?,
    }
    Ok(if outcome.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

fn write_summary(out: &Path) -> Result<(), ExitCode> {
    if !out.is_dir() {
        return Err(fail(2, &format!("{} is not a directory", out.display())));
    }
    let written = rows::write(out).map_err(|e| fail(3, &e))?;
    eprintln!("{}: {} submission(s)", out.join(summary::FILE).display(), written.rows);
    if !written.not_graded.is_empty() {
        eprintln!("not graded (empty rows): {}", written.not_graded.join(", "));
    }
    Ok(())
}

fn resolve(isolation: Isolation) -> Result<Isolation, ExitCode> {
    isolation.resolve().map_err(|e| fail(2, &e.to_string()))
}

/// Says what went wrong, and the exit status that goes with it.
fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(code)
}

/// Loads a spec, or says what is wrong with it (exit 2).
fn load_spec(path: &Path) -> Result<lang::Spec, ExitCode> {
    lang::load(path).map_err(|e| {
        eprint!("{}", e.render(std::io::stderr().is_terminal()));
        ExitCode::from(2)
    })
}

/// Writes a report, making its directory first (PrairieLearn's grader must
/// create /grade/results itself).
fn write_report(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)
}
