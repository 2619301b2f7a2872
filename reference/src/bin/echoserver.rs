//! `echoserver PORT`: the reference echo server. See `reference::tcp_echo::server`.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let port = match args.as_slice() {
        [_, port] => match port.parse::<u16>() {
            Ok(port) => port,
            Err(_) => {
                eprintln!("echoserver: bad port {port:?}");
                return ExitCode::FAILURE;
            }
        },
        _ => {
            eprintln!("usage: echoserver PORT");
            return ExitCode::FAILURE;
        }
    };
    match reference::tcp_echo::server::run(port).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echoserver: cannot listen on port {port}: {e}");
            ExitCode::FAILURE
        }
    }
}
