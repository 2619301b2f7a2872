//! `echoclient HOST PORT`: the reference echo client. See `reference::tcp_echo::client`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (host, port) = match args.as_slice() {
        [_, host, port] => match port.parse::<u16>() {
            Ok(port) => (host.as_str(), port),
            Err(_) => {
                eprintln!("echoclient: bad port {port:?}");
                return ExitCode::FAILURE;
            }
        },
        _ => {
            eprintln!("usage: echoclient HOST PORT");
            return ExitCode::FAILURE;
        }
    };
    match reference::tcp_echo::client::run(host, port) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("echoclient: {message}");
            ExitCode::FAILURE
        }
    }
}
