//! Running the `multicast` family (`crate::lang::multicast`): join and
//! multicast_sender open the harness's endpoints on the group; expect_members
//! asks the kernel who is in it.

use super::play::Play;
use super::Run;
use super::{StepError, StepResult};
use crate::datagram::Endpoint;
use crate::lang::multicast::{ExpectMembers, Group, Join, MulticastSender};
use crate::lang::values::within;
use crate::witness;
use std::net::Ipv4Addr;

impl Run for Join {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let group = play.group_of(self.group);
        let name = &self.name.value;
        let endpoint = Endpoint::member(name, group, play.setting.port, play.decoy)
            .map_err(|e| StepError::CannotRun(format!("the grader could not join the group on 127.0.0.1: {e}")))?;
        play.endpoints.insert(name.clone(), endpoint);
        play.transcript
            .record(name, format!("joined {} on lo, port {{port}}", self.group));
        Ok(())
    }
}

impl Run for MulticastSender {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let group = play.group_of(self.group);
        let name = &self.name.value;
        let endpoint = Endpoint::sender(name, group, play.setting.port)
            .map_err(|e| StepError::CannotRun(format!("the grader could not open its multicast socket: {e}")))?;
        play.endpoints.insert(name.clone(), endpoint);
        play.transcript.record(
            name,
            format!("udp socket, peer {} port {{port}}, through lo, TTL 1", self.group),
        );
        Ok(())
    }
}

impl Run for ExpectMembers {
    async fn run(&self, play: &mut Play<'_>) -> StepResult {
        let group = play.group_of(self.group);
        let bound = within(self.within);
        let (found, count) = match witness::poll_until(bound, || {
            let count = witness::igmp_members(None, group);
            (count == self.count, count)
        })
        .await
        {
            Ok(count) => (true, count),
            Err(count) => (false, count),
        };
        play.transcript
            .record("", format!("members of {} on lo: {count}", self.group));
        if found {
            return Ok(());
        }
        Err(StepError::failed(format!(
            "expected {} sockets joined to the group on lo within {}ms; the kernel shows {count}",
            self.count,
            bound.as_millis()
        )))
    }
}

impl Play<'_> {
    /// The address a step's group stands for.
    pub fn group_of(&self, group: Group) -> Ipv4Addr {
        match group {
            Group::Scenario => scenario_group(self.setting.port),
            Group::Address(a) => a,
        }
    }
}

/// The scenario's own group, `{group}`: in 239.0.0.0/8 (administratively
/// scoped), made from its port, which no other scenario running at the
/// same time has, so that scenarios on one host count their own members.
pub fn scenario_group(port: u16) -> Ipv4Addr {
    let [high, low] = port.to_be_bytes();
    Ipv4Addr::new(239, 83, high, low)
}
