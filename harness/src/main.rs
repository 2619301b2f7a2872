//! The `sockgrade` command line.
//!
//! Exit status: 0 everything passed, 1 something failed (a build failure
//! included), 2 the command line or the spec is invalid, 3 the harness failed.
//! With a gradescope or prairielearn report (printed or written), 0 once the
//! reports are written, whatever the grade: those platforms read the grade
//! from the file, and PrairieLearn discards it when the grader exits non-zero.

use clap::{Parser, Subcommand};
use harness::isolation::Isolation;
use harness::listing;
use harness::report::{self, Format};
use harness::runner::{self, Options};
use harness::spec;
use harness::submission;
use harness::verdict::RunResult;
use std::io::IsTerminal;
use std::path::PathBuf;
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
    Run {
        /// The lab's spec (YAML).
        spec: PathBuf,
        /// The submission's directory: built with `make` if it has a Makefile.
        #[arg(long, conflicts_with = "reference", required_unless_present = "reference")]
        submission: Option<PathBuf>,
        /// Run against the reference programs instead of a submission.
        #[arg(long)]
        reference: bool,
        /// Where the reference programs are (default: beside this executable).
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
        #[arg(long, value_enum, default_value_t = Isolation::Auto)]
        isolation: Isolation,
        /// Only scenarios whose name contains this (repeatable).
        #[arg(long)]
        only: Vec<String>,
        /// Show the transcript of each failing scenario.
        #[arg(long, short)]
        verbose: bool,
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
    match cli.command {
        Command::Schema => {
            print!("{}", spec::schema());
            ExitCode::SUCCESS
        }
        Command::List { spec: path, format } => match load_spec(&path) {
            Ok(s) => {
                print!(
                    "{}",
                    match format {
                        ListFormat::Human => listing::human(&s),
                        ListFormat::Json => listing::json(&s),
                    }
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Check { spec: path } => match spec::load(&path) {
            Ok(s) => {
                let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
                println!(
                    "{}: {}, {}: ok",
                    path.display(),
                    count(s.programs.len(), "program"),
                    count(s.scenarios.len(), "scenario")
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprint!("{}", e.render(std::io::stderr().is_terminal()));
                ExitCode::from(2)
            }
        },
        Command::Run {
            spec: path,
            submission,
            reference,
            reference_dir,
            format,
            output,
            jobs,
            isolation,
            only,
            verbose,
        } => {
            let started = std::time::Instant::now();
            let spec = match load_spec(&path) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let isolation = match isolation.resolve() {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let work = match make_work_dir() {
                Ok(w) => w,
                Err(e) => {
                    eprintln!("error: cannot make a working directory: {e}");
                    return ExitCode::from(3);
                }
            };
            let (built, label) = if reference {
                let dir = reference_dir.unwrap_or_else(|| {
                    std::env::current_exe()
                        .ok()
                        .and_then(|p| p.parent().map(PathBuf::from))
                        .unwrap_or_default()
                });
                match submission::reference(&spec, &dir, work.path()) {
                    Ok(b) => (b, "reference".to_string()),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                }
            } else {
                let dir = submission.expect("clap requires one");
                if !dir.is_dir() {
                    eprintln!("error: the submission `{}` is not a directory", dir.display());
                    return ExitCode::from(2);
                }
                match submission::build(&dir, work.path()) {
                    Ok(b) => (b, dir.display().to_string()),
                    Err(e) => {
                        eprintln!("error: could not copy the submission: {e}");
                        return ExitCode::from(3);
                    }
                }
            };
            let broken = (!built.build.succeeded()).then(|| {
                format!(
                    "the submission did not build (make {}); see the build output",
                    built.build.status.as_str()
                )
            });
            let options = Options {
                jobs,
                isolation,
                filter: only,
            };
            let results = runner::run(&spec, &built.dir, work.path(), &options, broken.as_deref());
            let report = RunResult::new(
                &spec,
                label,
                built.build,
                results,
                isolation.as_str(),
                started.elapsed(),
            );
            // Files first: a platform reads its file, and a failure to write
            // one is the harness's failure, whatever stdout says.
            for o in &output {
                let style = report::Style { color: false, verbose };
                if let Err(e) = write_report(&o.path, &report::render(o.format, &report, &style)) {
                    eprintln!("error: cannot write {}: {e}", o.path.display());
                    return ExitCode::from(3);
                }
            }
            let style = report::Style {
                color: color(),
                verbose,
            };
            print!("{}", report::render(format, &report, &style));
            if report.all_passed()
                || std::iter::once(format)
                    .chain(output.iter().map(|o| o.format))
                    .any(Format::exits_zero)
            {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// Loads a spec, or says what is wrong with it (exit 2).
fn load_spec(path: &std::path::Path) -> Result<spec::Spec, ExitCode> {
    spec::load(path).map_err(|e| {
        eprint!("{}", e.render(std::io::stderr().is_terminal()));
        ExitCode::from(2)
    })
}

/// Writes a report, making its directory first (PrairieLearn's grader must
/// create /grade/results itself).
fn write_report(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)
}

/// A private directory that others may pass through (the scenario's user
/// needs to reach its own directory inside) but not list.
fn make_work_dir() -> std::io::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new().prefix("sockgrade-").tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))?;
    Ok(dir)
}
