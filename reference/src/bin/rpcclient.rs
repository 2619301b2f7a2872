//! `rpcclient HOST PORT`: the reference calculator client. See `reference::rpc::client`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (host, port) = match args.as_slice() {
        [_, host, port] => match port.parse::<u16>() {
            Ok(port) => (host.as_str(), port),
            Err(_) => {
                eprintln!("rpcclient: bad port {port:?}");
                return ExitCode::FAILURE;
            }
        },
        _ => {
            eprintln!("usage: rpcclient HOST PORT");
            return ExitCode::FAILURE;
        }
    };
    match reference::rpc::client::run(host, port) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("rpcclient: {message}");
            ExitCode::FAILURE
        }
    }
}
