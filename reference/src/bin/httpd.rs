//! `httpd PORT DOCROOT`: serves the files under DOCROOT over HTTP/1.1 until
//! SIGTERM. See `reference::http::server`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (port, docroot) = match args.as_slice() {
        [_, port, docroot] => match port.parse::<u16>() {
            Ok(port) => (port, PathBuf::from(docroot)),
            Err(_) => return usage(&format!("bad port {port:?}")),
        },
        _ => return usage("expected 2 arguments"),
    };

    // A multi-threaded tokio runtime: one worker thread per core, each
    // running many connections' tasks, plus a pool of threads for blocking
    // file-system calls. That pool grows on demand (to 512 threads by
    // default); we cap it, so that a thousand simultaneous requests queue
    // for a thread instead of creating hundreds.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(16)
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    let result = runtime.block_on(reference::http::server::run(port, &docroot));
    // Do not wait long for tasks still running (a file read on a blocking
    // thread): SIGTERM asks us to go now.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
}

fn usage(problem: &str) -> ExitCode {
    fail(&format!("{problem}; usage: httpd PORT DOCROOT"))
}

fn fail(message: &str) -> ExitCode {
    eprintln!("httpd: {message}");
    ExitCode::FAILURE
}
