//! `mcastrecv GROUP PORT`: the multicast receiver. See `reference::multicast::receiver`.

use std::net::Ipv4Addr;
use std::process::ExitCode;

use reference::multicast::{parse_group, receiver};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (group, port) = match parse_args(&args) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("mcastrecv: {message}");
            return ExitCode::FAILURE;
        }
    };
    match receiver::run(group, port).await {
        // SIGTERM. Exit right here rather than return: returning would shut
        // the tokio runtime down, and that waits for its blocking threads, one
        // of which may be stuck writing to a stdout pipe that nobody reads.
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("mcastrecv: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(args: &[String]) -> Result<(Ipv4Addr, u16), String> {
    match args {
        [_, group, port] => Ok((
            parse_group(group)?,
            port.parse().map_err(|_| format!("bad port {port}"))?,
        )),
        _ => Err("usage: mcastrecv GROUP PORT".into()),
    }
}
