//! Running the `witness` family (`crate::lang::witness`): what the kernel
//! shows of a program, read from /proc by `crate::witness`: fd_baseline,
//! expect_fds, memory_baseline, expect_memory, expect_released,
//! expect_zombies, expect_idle.
//!
//! The expectations poll a single look with an upper bound, and fail at once
//! (saying how) when the program died: a dead program holds no descriptor,
//! which is no pass.

use super::play::Play;
use super::Failing;
use super::{Run, StepError, StepResult};
use crate::lang::values::within;
use crate::lang::witness::{
    ExpectAccepted, ExpectAtRest, ExpectFds, ExpectIdle, ExpectMemory, ExpectRead, ExpectReleased, ExpectZombies,
};
use crate::lang::witness::{ExpectListening, FdBaseline, MemoryBaseline};
use crate::lang::Protocol;
use crate::witness::{self, poll_until, tree_rss, tree_usage};
use tokio::time::Instant;

/// What a descriptor left open costs, in the words a student needs.
const FD_LEAK_ADVICE: &str =
    "A descriptor that is never closed is a leak: each connection must be close()d when its client is done";
/// What a connection still held means.
const RELEASE_ADVICE: &str =
    "Every descriptor of a connection must be close()d once its client is gone: in a forking server, the parent's copy too";
/// What memory that grows with clients means.
const MEMORY_ADVICE: &str =
    "Memory that grows with every client is a leak: free() what you allocated for a client when it leaves";

impl Run for FdBaseline {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let name = &self.program.value;
        let pid = play.running(name)?.pid;
        // The baseline is what the program holds with no client connected. A
        // connection the harness just closed may not be closed by the program
        // yet; counting it would make the baseline depend on the scheduler (and
        // excuse a leak). The connections are read first: one the program
        // closes between the two reads is then in neither count, where read
        // second it would stay in the baseline.
        let connections = witness::connection_fds(pid);
        let mut fds = witness::fds(pid)
            .ok_or_else(|| format!("cannot read the descriptors of {name}"))
            .or_cannot_run()?;
        fds.retain(|fd, _| !connections.contains(fd));
        play.transcript.record_with_detail(
            name,
            "open descriptors noted as the baseline",
            format!("{} open", fds.len()),
        );
        play.fd_baselines.insert(name.clone(), fds);
        Ok(())
    }
}

impl Run for ExpectFds {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let name = &self.program.value;
        let baseline = play
            .fd_baselines
            .get(name)
            .cloned()
            .ok_or_else(|| format!("`expect_fds` needs an earlier `fd_baseline: {name}`"))
            .or_cannot_run()?;
        let pid = play.running(name)?.pid;
        let limit = baseline.len() + self.above_baseline;
        let prog = &play.programs[name];
        let now = poll_until(within(self.within), || {
            if !prog.is_running() || !witness::alive(pid) {
                return (true, None);
            }
            let fds = witness::fds(pid).unwrap_or_default();
            (fds.len() <= limit, Some(fds))
        })
        .await;
        if !witness::alive(pid) {
            let how = play.how_it_ended(name).await;
            return Err(StepError::failed(format!(
                "expected {name} to be running with at most {limit} open descriptors; it {how}"
            )));
        }
        match now {
            Ok(fds) => {
                let fds = fds.unwrap_or_default();
                // The difference is the program's doing; the counts also hold
                // whatever its runtime opened for itself.
                let difference = fds.len() as i64 - baseline.len() as i64;
                play.transcript.record_with_detail(
                    name,
                    format!("open descriptors: baseline {difference:+}"),
                    format!("{} open, baseline {}", fds.len(), baseline.len()),
                );
                Ok(())
            }
            Err(fds) => {
                let fds = fds.unwrap_or_default();
                let extra: Vec<String> = fds
                    .iter()
                    .filter(|(fd, target)| baseline.get(fd) != Some(target))
                    .take(5)
                    .map(|(fd, target)| format!("fd {fd} -> {target}"))
                    .collect();
                Err(StepError::failed(format!(
                    "expected {name} to have at most {limit} open descriptors once its clients were gone (its baseline was {}); it has {}: {} more.\n  New since the baseline: {}{}\n  {FD_LEAK_ADVICE}",
                    baseline.len(),
                    fds.len(),
                    fds.len().saturating_sub(baseline.len()),
                    extra.join(", "),
                    if fds.len() - baseline.len().min(fds.len()) > 5 { ", ..." } else { "" }
                )))
            }
        }
    }
}

impl Run for MemoryBaseline {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let name = &self.program.value;
        let pid = play.running(name)?.pid;
        let rss = tree_rss(pid);
        play.transcript.record_with_detail(
            name,
            "resident memory noted as the baseline",
            format!("{} KiB", rss >> 10),
        );
        play.memory_baselines.insert(name.clone(), rss);
        Ok(())
    }
}

impl Run for ExpectMemory {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let name = &self.program.value;
        let baseline = *play
            .memory_baselines
            .get(name)
            .ok_or_else(|| format!("`expect_memory` needs an earlier `memory_baseline: {name}`"))
            .or_cannot_run()?;
        let pid = play.running(name)?.pid;
        let limit = baseline + self.growth_at_most.0 as u64;
        // Children that are still finishing their clients hold memory too: wait
        // (bounded) for the tree to settle.
        let rss = poll_until(within(self.within), || {
            if !witness::alive(pid) {
                return (true, 0);
            }
            let rss = tree_rss(pid);
            (rss <= limit, rss)
        })
        .await;
        if !witness::alive(pid) {
            let how = play.how_it_ended(name).await;
            return Err(StepError::failed(format!("expected {name} to keep running; it {how}")));
        }
        match rss {
            Ok(rss) => {
                play.transcript.record_with_detail(
                    name,
                    format!("resident memory within {} KiB of the baseline", self.growth_at_most.0 >> 10),
                    format!("{} KiB, baseline {} KiB", rss >> 10, baseline >> 10),
                );
                Ok(())
            }
            Err(rss) => Err(StepError::failed(format!(
                "expected {name}'s resident memory to stay within {} KiB of its baseline ({} KiB) once its clients were gone; it is {} KiB, {} KiB more.\n  {MEMORY_ADVICE}",
                self.growth_at_most.0 >> 10,
                baseline >> 10,
                rss >> 10,
                rss.saturating_sub(baseline) >> 10
            ))),
        }
    }
}

impl Run for ExpectAccepted {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let name = &self.program.value;
        let target = &self.connection.value;
        // A group stands for its members.
        let members = play.groups.get(target).cloned().unwrap_or_else(|| vec![target.clone()]);
        let ports = members
            .iter()
            .map(|m| play.conns.get(m).map(|c| (m.clone(), c.local_port)))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| format!("`{target}` was never opened"))
            .or_cannot_run()?;
        let pid = play.running(name)?.pid;
        let port = play.setting.port;
        let waiting = poll_until(within(self.within), || {
            let tree = witness::tree(pid, &witness::processes());
            let waiting: Vec<String> = ports
                .iter()
                .filter(|(_, p)| witness::connection_hold(&tree, port, *p) != witness::Hold::Held)
                .map(|(m, _)| m.clone())
                .collect();
            (waiting.is_empty() || !witness::alive(pid), waiting)
        })
        .await;
        if !witness::alive(pid) {
            let how = play.how_it_ended(name).await;
            return Err(StepError::failed(format!(
                "expected {name} to accept `{target}`; it {how}"
            )));
        }
        match waiting {
            Ok(_) => {
                play.transcript.record(name, format!("accepted {target}"));
                Ok(())
            }
            Err(waiting) => Err(StepError::failed(format!(
                "expected {name} to accept {} within {}ms; {} still waiting in its listen queue (or closed): {}",
                match members.len() {
                    1 => format!("`{target}`"),
                    n => format!("the {n} connections of `{target}`"),
                },
                within(self.within).as_millis(),
                waiting.len(),
                waiting.join(", ")
            ))),
        }
    }
}

impl Run for ExpectRead {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let name = &self.program.value;
        let conn = &self.connection.value;
        // The program's port and the harness's, whichever side connected.
        let (port, peer_port, pending) = play
            .conns
            .get(conn)
            .map(|c| (c.remote_port, c.local_port, c.writes_pending()))
            .ok_or_else(|| format!("`{conn}` was never opened"))
            .or_cannot_run()?;
        let pid = play.running(name)?.pid;
        // The harness's own writes first: what it queued must be in the kernel.
        let read = poll_until(within(self.within), || {
            let queues = witness::connection_queues(pid, port, peer_port);
            let done = !pending() && matches!(queues, Some(((0, _), (_, 0))));
            (done || !witness::alive(pid), queues)
        })
        .await;
        if !witness::alive(pid) {
            let how = play.how_it_ended(name).await;
            return Err(StepError::failed(format!(
                "expected {name} to read what was sent on `{conn}`; it {how}"
            )));
        }
        match read {
            Ok(_) => {
                play.transcript.record(name, format!("read everything sent on {conn}"));
                Ok(())
            }
            Err(queues) => Err(StepError::failed(format!(
                "expected {name} to read everything sent on `{conn}` within {}ms; {}",
                within(self.within).as_millis(),
                match queues {
                    Some(((_, _), (_, unread))) if unread > 0 =>
                        format!("{unread} bytes still wait in its receive queue"),
                    Some(_) => "bytes were still on their way to it".to_string(),
                    None => "the connection is no longer in the kernel's table".to_string(),
                }
            ))),
        }
    }
}

impl Run for ExpectReleased {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let name = &self.program.value;
        let conn = &self.connection.value;
        let peer_port = play
            .conns
            .get(conn)
            .map(|c| c.local_port)
            .ok_or_else(|| format!("`{conn}` was never opened"))
            .or_cannot_run()?;
        let pid = play.running(name)?.pid;
        let port = play.setting.port;
        let hold = poll_until(within(self.within), || {
            if !witness::alive(pid) {
                return (true, None);
            }
            let tree = witness::tree(pid, &witness::processes());
            let hold = witness::connection_hold(&tree, port, peer_port);
            (hold == witness::Hold::Released, Some(hold))
        })
        .await;
        if !witness::alive(pid) {
            let how = play.how_it_ended(name).await;
            return Err(StepError::failed(format!(
                "expected {name} to close its end of `{conn}` and go on; it {how}"
            )));
        }
        match hold {
            Ok(_) => {
                play.transcript.record(name, format!("closed its end of {conn}"));
                Ok(())
            }
            Err(Some(witness::Hold::Waiting)) => Err(StepError::failed(format!(
                "expected {name} to accept `{conn}` and close it within {}ms; it never accepted it",
                within(self.within).as_millis()
            ))),
            Err(_) => {
                Err(StepError::failed(format!(
                    "expected {name} to close its end of `{conn}` within {}ms of the client leaving; a descriptor of {name} still refers to it.\n  {RELEASE_ADVICE}",
                    within(self.within).as_millis()
                ))
                .observed(super::tcp::copy_kept(play, Some(&self.connection))))
            }
        }
    }
}

/// Nothing is in flight toward the programs `pids` or from them: every
/// write the grader queued was handed to the kernel (its bytes still queued
/// are in flight toward them too), and each program's tree waits in the
/// kernel with its sockets' queues empty (`witness::tree_settled`).
pub(super) fn settled(play: &Play<'_>, pids: impl IntoIterator<Item = i32>) -> bool {
    play.conns.values().all(|c| c.written()) && pids.into_iter().all(witness::tree_settled)
}

impl Run for ExpectAtRest {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let name = &self.program.value;
        let pid = play.running(name)?.pid;
        // Twice in a row: a thread between two system calls may look asleep
        // for a moment (waiting on a lock another thread holds while it works).
        let mut calm = 0;
        let settled = poll_until(within(self.within), || {
            let quiet = settled(&*play, [pid]);
            calm = if quiet { calm + 1 } else { 0 };
            (calm >= 2, ())
        })
        .await;
        match settled {
            Ok(()) => {
                play.transcript.record(name, "at rest");
                Ok(())
            }
            Err(()) => Err(StepError::failed(format!(
                "expected {name} to come to rest (every thread waiting in the kernel, nothing in flight) within {}ms; \
                 it did not: a thread kept running, or bytes kept waiting in its sockets",
                within(self.within).as_millis()
            ))),
        }
    }
}

impl Run for ExpectZombies {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let name = &self.program.value;
        let pid = play.running(name)?.pid;
        let at_most = self.at_most;
        let r = poll_until(within(self.within), || {
            let n = witness::zombies(pid, &witness::processes()).len();
            (n <= at_most, n)
        })
        .await;
        match r {
            Ok(_) => {
                play.transcript.record(name, format!("at most {at_most} zombie children"));
                Ok(())
            }
            Err(n) => Err(StepError::failed(format!(
                "expected {name} to have at most {at_most} zombie children; it has {n}: children that exited and were never waited for"
            ))),
        }
    }
}

impl Run for ExpectIdle {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let name = &self.program.value;
        let pid = play.running(name)?.pid;
        let (t0, rss0, _) = tree_usage(pid);
        let demand0 = witness::tree_demand(pid);
        let began = Instant::now();
        // Watching over time is the point of this step: nothing to wait for.
        tokio::time::sleep(self.duration.0).await;
        let (t1, rss1, procs) = tree_usage(pid);
        let demand1 = witness::tree_demand(pid);
        if !witness::alive(pid) {
            let how = play.how_it_ended(name).await;
            return Err(StepError::failed(format!(
                "expected {name} to stay running while idle; it {how}"
            )));
        }
        let secs = began.elapsed().as_secs_f64();
        // The time the program wanted a CPU where the kernel tells it (a loaded
        // machine can't make a spinning program look idle), else CPU time.
        let (cpu, what) = match (demand0, demand1) {
            (Some(before), Some(after)) => {
                let wanted: u64 = after
                    .iter()
                    .map(|(tid, ns)| ns.saturating_sub(before.get(tid).copied().unwrap_or(0)))
                    .sum();
                (wanted as f64 / 1e9 / secs * 100.0, "was running or waiting to run")
            }
            _ => (
                t1.saturating_sub(t0) as f64 / witness::ticks_per_second() as f64 / secs * 100.0,
                "used the CPU",
            ),
        };
        if let Some(max) = self.max_cpu_percent {
            if cpu > max as f64 {
                return Err(StepError::failed(format!(
                    "expected {name} to use at most {max}% CPU while idle; it {what} {cpu:.0}% of {secs:.1}s: a loop that polls or yields instead of blocking in accept/read/poll"
                )));
            }
        }
        if let Some(max) = self.max_processes {
            if procs > max {
                return Err(StepError::failed(format!(
                    "expected at most {max} processes while idle; {name} has {procs}"
                )));
            }
        }
        if let Some(max) = self.max_rss_growth {
            let growth = rss1.saturating_sub(rss0);
            if growth > max.0 as u64 {
                return Err(StepError::failed(format!(
                    "expected {name}'s memory to grow by at most {} bytes while idle; it grew by {growth}",
                    max.0
                )));
            }
        }
        play.transcript
            .record(name, format!("idle for {}: within bounds", self.duration));
        Ok(())
    }
}

impl Run for ExpectListening {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let name = &self.program.value;
        let port = play.setting.port;
        // The checker let only a program that `listens` come here.
        let protocol = play
            .spec
            .programs
            .get(name)
            .and_then(|p| p.listens)
            .unwrap_or(Protocol::Tcp);
        let program = play.program(name)?;
        if let Some(status) = program.exit_status() {
            return Err(StepError::failed(format!(
                "expected {name} to listen on port {port}, but it {}",
                crate::process::ended(&status)
            )));
        }
        let pids = witness::tree(program.pid, &witness::processes());
        if !witness::is_ready(&pids, port, protocol) {
            return Err(StepError::failed(format!(
                "expected {name} to listen on port {port}, but the kernel shows no socket of it there any more: it \
                 closed its listening socket"
            )));
        }
        play.transcript.record(name, format!("listening on port {port}"));
        Ok(())
    }
}
