//! `proxy PORT`: a caching web proxy. See `reference::proxy`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let port = match args.as_slice() {
        [_, port] => match port.parse::<u16>() {
            Ok(port) => port,
            Err(_) => return fail(&format!("bad port {port:?}; usage: proxy PORT")),
        },
        _ => return fail("expected 1 argument; usage: proxy PORT"),
    };
    match reference::proxy::server::run(port) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("cannot listen on port {port}: {e}")),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("proxy: {message}");
    ExitCode::FAILURE
}
