//! The `sockgrade` command line.
//!
//! Exit status: 0 everything passed, 1 something failed (a build failure
//! included), 2 the command line or the spec is invalid, 3 the harness failed.

use clap::{Parser, Subcommand};
use harness::isolation::Isolation;
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
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
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
            jobs,
            isolation,
            only,
            verbose,
        } => {
            let spec = match spec::load(&path) {
                Ok(s) => s,
                Err(e) => {
                    eprint!("{}", e.render(std::io::stderr().is_terminal()));
                    return ExitCode::from(2);
                }
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
            let report = RunResult::new(&spec, label, built.build, results);
            let style = report::Style {
                color: color(),
                verbose,
            };
            let text = report::render(format, &report, &style);
            print!("{text}");
            if report.all_passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// A private directory that others may pass through (the scenario's user
/// needs to reach its own directory inside) but not list.
fn make_work_dir() -> std::io::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new().prefix("sockgrade-").tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))?;
    Ok(dir)
}
