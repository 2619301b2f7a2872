//! `httpget URL`: fetches an http:// URL and writes the body to stdout.
//! See `reference::http::client`.

use std::io::{self, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, url] = args.as_slice() else {
        eprintln!("httpget: usage: httpget URL");
        return ExitCode::FAILURE;
    };

    // Stdout is locked once and written in large pieces. Rust ignores
    // SIGPIPE, so if whoever reads our stdout goes away we get an error
    // (EPIPE), report it, and exit 1, instead of being killed.
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    match reference::http::client::get(url, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            // Whatever part of the body arrived goes out before we report.
            let _ = out.flush();
            eprintln!("{failure}");
            ExitCode::FAILURE
        }
    }
}
