//! `mcastsend GROUP PORT`: the multicast sender. See `reference::multicast::sender`.

use std::net::Ipv4Addr;
use std::process::ExitCode;

use reference::multicast::{parse_group, sender};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (group, port) = match parse_args(&args) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("mcastsend: {message}");
            return ExitCode::FAILURE;
        }
    };
    match sender::run(group, port) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcastsend: {e}");
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
        _ => Err("usage: mcastsend GROUP PORT".into()),
    }
}
