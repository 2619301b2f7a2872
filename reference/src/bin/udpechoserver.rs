//! `udpechoserver PORT`: the UDP echo server. See `reference::udp_echo::server`.

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let Some(port) = parse_args(&args) else {
        eprintln!("usage: udpechoserver PORT");
        return ExitCode::FAILURE;
    };
    match reference::udp_echo::server::run(port).await {
        Ok(()) => ExitCode::SUCCESS, // SIGTERM
        Err(e) => {
            eprintln!("udpechoserver: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(args: &[String]) -> Option<u16> {
    match args {
        [_, port] => port.parse().ok(),
        _ => None,
    }
}
