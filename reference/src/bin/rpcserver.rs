//! `rpcserver PORT`: the reference calculator server. See `reference::rpc::server`.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let port = match args.as_slice() {
        [_, port] => match port.parse::<u16>() {
            Ok(port) => port,
            Err(_) => {
                eprintln!("rpcserver: bad port {port:?}");
                return ExitCode::FAILURE;
            }
        },
        _ => {
            eprintln!("usage: rpcserver PORT");
            return ExitCode::FAILURE;
        }
    };
    match reference::rpc::server::run(port).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rpcserver: cannot listen on port {port}: {e}");
            ExitCode::FAILURE
        }
    }
}
