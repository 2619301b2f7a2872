//! `udpechoclient HOST PORT`: the UDP echo client. See `reference::udp_echo::client`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let Some((host, port)) = parse_args(&args) else {
        eprintln!("usage: udpechoclient HOST PORT");
        return ExitCode::FAILURE;
    };
    match reference::udp_echo::client::run(host, port) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            // One line: `timeout`, or what failed and why.
            eprintln!("{failure}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(args: &[String]) -> Option<(&str, u16)> {
    match args {
        [_, host, port] => Some((host, port.parse().ok()?)),
        _ => None,
    }
}
