//! A relay of the harness between two programs: a client under test on one
//! side (it was given `{port}`, where the relay listens) and a program on
//! the other (at `{port2}`), usually the reference server. Each datagram is
//! delivered, dropped, duplicated or delayed, as the spec's plan says or at
//! random from a seed, and each decision is a line of the transcript.
//!
//! It runs in the background, as a network would, until the scenario ends.

use crate::datagram::Endpoint;
use crate::escape;
use crate::lang::udp::{Fate, Nth, Relay as Plan};
use crate::transcript::{Transcript, Wire};
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;

/// Starts the relay; it runs until the scenario's runtime ends. `holds`
/// counts the datagrams it has taken and not yet sent on (those it delays,
/// above all): while it holds one, something is still to come.
pub fn start(
    plan: &Plan,
    port: u16,
    upstream_port: u16,
    transcript: Transcript,
    holds: Arc<AtomicUsize>,
) -> io::Result<()> {
    // The client's side: the same socket as the harness's server endpoint
    // (127.0.0.1 and ::1), where the client under test sends.
    let front = Endpoint::server(&plan.name.value, port)?.into_socket();
    let back = std::net::UdpSocket::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
    back.set_nonblocking(true)?;
    let back = Arc::new(UdpSocket::from_std(back)?);
    let upstream = SocketAddr::from((Ipv4Addr::LOCALHOST, upstream_port));
    let mut fates = Fates {
        plan: plan.plan.clone(),
        random: plan.random,
        counts: [0, 0],
    };
    let name = plan.name.value.clone();
    let program = plan.to.value.clone();
    tokio::spawn(async move {
        let mut client: Option<SocketAddr> = None;
        let mut from_client = vec![0u8; 65_536];
        let mut from_program = vec![0u8; 65_536];
        loop {
            tokio::select! {
                got = front.recv_from(&mut from_client) => {
                    let Ok((n, from)) = got else { continue };
                    client = Some(from);
                    let bytes = from_client[..n].to_vec();
                    let (nth, fate) = fates.next(false);
                    record(&transcript, &name, &bytes, "from the client", nth, fate);
                    forward(back.clone(), bytes, upstream, fate, &holds);
                }
                got = back.recv_from(&mut from_program) => {
                    // Only the program's own datagrams are its replies.
                    let Ok((n, from)) = got else { continue };
                    if from != upstream {
                        continue;
                    }
                    let bytes = from_program[..n].to_vec();
                    let (nth, fate) = fates.next(true);
                    match client {
                        Some(client) => {
                            record(&transcript, &name, &bytes, &format!("from {program}"), nth, fate);
                            forward(front.clone(), bytes, client, fate, &holds);
                        }
                        // Nobody to pass it to: said so, not "passed on".
                        None => record(&transcript, &name, &bytes, &format!("from {program}"), nth, Fate::Drop),
                    }
                }
            }
        }
    });
    Ok(())
}

/// Sends `bytes` on as `fate` says, held (counted in `holds`) until sent.
fn forward(socket: Arc<UdpSocket>, bytes: Vec<u8>, to: SocketAddr, fate: Fate, holds: &Arc<AtomicUsize>) {
    let to = crate::datagram::for_socket(&socket, to);
    let copies = match fate {
        Fate::Drop => return,
        Fate::Duplicate => 2,
        Fate::Deliver | Fate::Delay(_) => 1,
    };
    let delay = match fate {
        Fate::Delay(d) => d,
        _ => Duration::ZERO,
    };
    holds.fetch_add(1, Ordering::SeqCst);
    let holds = holds.clone();
    tokio::spawn(async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        for _ in 0..copies {
            // Lost if it can't go: the network's right.
            let _ = socket.send_to(&bytes, to).await;
        }
        holds.fetch_sub(1, Ordering::SeqCst);
    });
}

fn record(t: &Transcript, name: &str, bytes: &[u8], whom: &str, nth: Nth, fate: Fate) {
    let fate = match fate {
        Fate::Deliver => format!("{nth}, passed on"),
        Fate::Drop => format!("{nth}, dropped"),
        Fate::Duplicate => format!("{nth}, passed on twice"),
        Fate::Delay(d) => format!("{nth}, passed on {}ms late", d.as_millis()),
    };
    t.record_wire(
        name,
        Wire::Datagram {
            outgoing: false,
            shown: escape::quote(bytes, 80),
            bytes: bytes.len(),
            whom: whom.to_string(),
            mismatch: None,
            fate: Some(fate),
        },
    );
}

/// The fate of each datagram in turn: the plan's, else a random loss, else
/// delivery. A random loss is drawn from the seed and the datagram's own
/// name (`reply 3`), not from a stream shared by both directions: how
/// requests and replies interleave, which timing decides, does not change
/// which ones are lost.
struct Fates {
    plan: HashMap<Nth, Fate>,
    random: Option<(u64, u8)>,
    /// Requests and replies so far.
    counts: [usize; 2],
}

impl Fates {
    fn next(&mut self, reply: bool) -> (Nth, Fate) {
        let count = &mut self.counts[usize::from(reply)];
        *count += 1;
        let nth = Nth { reply, n: *count };
        if let Some(fate) = self.plan.get(&nth) {
            return (nth, *fate);
        }
        if let Some((seed, loss)) = self.random {
            let name = (nth.n as u64) << 1 | u64::from(nth.reply);
            if Random::new(seed ^ name.wrapping_mul(0xD6E8_FEB8_6659_FD93)).percent() < loss {
                return (nth, Fate::Drop);
            }
        }
        (nth, Fate::Deliver)
    }
}

/// xorshift64*: the same losses for the same seed, on every machine.
struct Random(u64);

impl Random {
    fn new(seed: u64) -> Random {
        Random(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }

    fn percent(&mut self) -> u8 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) % 100) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fates(plan: &[(Nth, Fate)], random: Option<(u64, u8)>) -> Fates {
        Fates {
            plan: plan.iter().copied().collect(),
            random,
            counts: [0, 0],
        }
    }

    /// Requests and replies are counted apart, and the plan's fate wins.
    #[test]
    fn a_plan_names_datagrams_by_their_number_in_each_direction() {
        let request1 = Nth { reply: false, n: 1 };
        let reply2 = Nth { reply: true, n: 2 };
        let mut f = fates(&[(request1, Fate::Drop), (reply2, Fate::Duplicate)], None);
        assert_eq!(f.next(false), (request1, Fate::Drop));
        assert_eq!(f.next(false).1, Fate::Deliver);
        assert_eq!(f.next(true).1, Fate::Deliver);
        assert_eq!(f.next(true), (reply2, Fate::Duplicate));
    }

    /// The same seed loses the same datagrams, on every machine, whatever
    /// the order requests and replies arrive in; about `loss` percent.
    #[test]
    fn a_seed_loses_the_same_datagrams_every_time() {
        let lost = |order: &[bool]| {
            let mut f = fates(&[], Some((7, 50)));
            let mut out: Vec<(bool, usize)> = order
                .iter()
                .map(|&reply| f.next(reply))
                .filter(|(_, fate)| *fate == Fate::Drop)
                .map(|(nth, _)| (nth.reply, nth.n))
                .collect();
            out.sort();
            out
        };
        assert_eq!(
            lost(&[false, true, false, true, false, true]),
            lost(&[false, false, true, false, true, true])
        );
        let run = |seed| {
            let mut f = fates(&[], Some((seed, 30)));
            (0..1000)
                .map(|i| f.next(i % 2 == 1).1 == Fate::Drop)
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let lost = run(7).iter().filter(|l| **l).count();
        assert!((250..350).contains(&lost), "{lost} of 1000 lost at 30%");
    }
}
