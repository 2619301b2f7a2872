//! The `multicast` family: the harness as a member of the group, hearing a
//! sender under test (`join`), as a sender to receivers under test
//! (`multicast_sender`), and what the kernel shows of the group's members
//! (`expect_members`). Run by `crate::steps::multicast`; the endpoints they
//! open take the `udp` family's `send_datagram` and `expect_datagram`.
//!
//! The group is `{group}` unless a step names one: an address of
//! 239.0.0.0/8 of the scenario's own, as `{port}` is its port (passed to
//! programs in their command lines the same way).

use super::check::{Checker, Kind, Scope};
use super::step::Keyword;
use super::{FromName, Name};
use serde::Deserialize;
use serde_saphyr::Location;
use std::net::Ipv4Addr;

/// A group as written: `{group}`, or an address of 224.0.0.0/4.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Group {
    /// The scenario's own group.
    #[default]
    Scenario,
    Address(Ipv4Addr),
}

impl Group {
    pub fn parse(text: &str) -> Result<Group, String> {
        if text == "{group}" {
            return Ok(Group::Scenario);
        }
        let addr: Ipv4Addr = text
            .parse()
            .map_err(|_| format!("expected `{{group}}` or an IPv4 multicast address, found `{text}`"))?;
        if !addr.is_multicast() {
            return Err(format!(
                "expected a multicast group (224.0.0.0/4; a lab's own group is best in 239.0.0.0/8), found `{text}`"
            ));
        }
        Ok(Group::Address(addr))
    }
}

/// As transcripts show it: `{group}` stays a placeholder, like `{port}`.
impl std::fmt::Display for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Group::Scenario => f.write_str("{group}"),
            Group::Address(a) => write!(f, "{a}"),
        }
    }
}

impl<'de> Deserialize<'de> for Group {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Group::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Group {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Group".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
}

/// `join: m`, or `join: { as: m, group: "239.1.2.3" }`: the harness joins
/// the group on the interface 127.0.0.1, bound to `{port}` beside the
/// programs (SO_REUSEADDR). What arrives is checked with `expect_datagram`,
/// which also checks that it came through lo and can check its `ttl`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Join {
    #[serde(rename = "as")]
    #[schemars(with = "String")]
    pub name: Name,
    #[serde(default)]
    pub group: Group,
}
impl FromName for Join {
    fn from_name(name: Name) -> Self {
        Join {
            name,
            group: Group::Scenario,
        }
    }
}

/// `multicast_sender: s`: an endpoint whose peer is the group at `{port}`,
/// sending through 127.0.0.1 with a TTL of 1, as a correct sender does.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MulticastSender {
    #[serde(rename = "as")]
    #[schemars(with = "String")]
    pub name: Name,
    #[serde(default)]
    pub group: Group,
}
impl FromName for MulticastSender {
    fn from_name(name: Name) -> Self {
        MulticastSender {
            name,
            group: Group::Scenario,
        }
    }
}

/// `expect_members: { count: 0 }`: the kernel shows this many sockets
/// joined to the group on lo (`/proc/net/igmp`), within `within` (2 s):
/// after a receiver's exit, 0 says it left.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectMembers {
    #[serde(default)]
    pub group: Group,
    pub count: u32,
    #[serde(default)]
    pub within: Option<super::TimeSpan>,
}

impl Keyword for Join {
    fn describe(&self) -> String {
        format!("join the group on 127.0.0.1 (as `{}`)", self.name.value)
    }
    fn check(&self, checker: &mut Checker<'_>, scope: &mut Scope, at: Location) {
        checker.declare(scope, &self.name, Kind::Endpoint, at)
    }
}

impl Keyword for MulticastSender {
    fn describe(&self) -> String {
        format!("send to the group through 127.0.0.1 (as `{}`)", self.name.value)
    }
    fn check(&self, checker: &mut Checker<'_>, scope: &mut Scope, at: Location) {
        checker.declare(scope, &self.name, Kind::Endpoint, at)
    }
}

impl Keyword for ExpectMembers {
    fn describe(&self) -> String {
        format!("check that {} sockets are members of the group", self.count)
    }
}
