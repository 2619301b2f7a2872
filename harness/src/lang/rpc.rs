//! The `rpc` family: binary messages on a TCP connection, written and
//! checked field by field rather than as hex dumps. Run by
//! `crate::steps::rpc`.
//!
//! A spec that uses them declares its wire format once, at the top:
//!
//! ```yaml
//! frames:
//!   length: u32              # every message: the body's length, then the body
//!   messages:
//!     request: [opcode: u8, a: i64, b: i64]
//!     response: [status: u8, result: i64]
//! ```
//!
//! Integers are big-endian (network byte order), as every lab's are. A
//! malformed frame (a wrong length, an unknown opcode) is written with the
//! `tcp` family's `send` and `hex`, as malformed bytes are.

use super::check::{Checker, Scope};
use super::step::{on_words, Keyword};
use super::values::{Size, TimeSpan};
use super::Name;
use crate::lang::tcp::Split;
use serde::Deserialize;
use serde_saphyr::Location;
use std::collections::BTreeMap;

/// A big-endian integer type of a field.
#[derive(Clone, Copy, Debug, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IntType {
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
}

impl IntType {
    pub fn size(self) -> usize {
        match self {
            IntType::U8 | IntType::I8 => 1,
            IntType::U16 | IntType::I16 => 2,
            IntType::U32 | IntType::I32 => 4,
            IntType::U64 | IntType::I64 => 8,
        }
    }

    fn signed(self) -> bool {
        matches!(self, IntType::I8 | IntType::I16 | IntType::I32 | IntType::I64)
    }

    /// The range a value of this type holds.
    pub fn range(self) -> (i128, i128) {
        let bits = 8 * self.size() as u32;
        if self.signed() {
            (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
        } else {
            (0, (1i128 << bits) - 1)
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            IntType::U8 => "u8",
            IntType::U16 => "u16",
            IntType::U32 => "u32",
            IntType::U64 => "u64",
            IntType::I8 => "i8",
            IntType::I16 => "i16",
            IntType::I32 => "i32",
            IntType::I64 => "i64",
        }
    }

    /// `value` as this many big-endian bytes (in range: checked at load).
    pub fn encode(self, value: i128, out: &mut Vec<u8>) {
        let bytes = value.to_be_bytes();
        out.extend_from_slice(&bytes[16 - self.size()..]);
    }

    /// The value of `bytes` (exactly `size()` of them), big-endian.
    pub fn decode(self, bytes: &[u8]) -> i128 {
        let mut raw: u128 = 0;
        for &b in bytes {
            raw = (raw << 8) | u128::from(b);
        }
        let bits = 8 * self.size() as u32;
        if self.signed() && raw >> (bits - 1) & 1 == 1 {
            raw as i128 - (1i128 << bits)
        } else {
            raw as i128
        }
    }
}

/// The spec's wire format: `frames: { length: u32, messages: {...} }`.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Frames {
    /// The type of the length before each body: the body's size in bytes.
    pub length: IntType,
    /// Each kind of message and its fields, in order: `[opcode: u8, a: i64]`.
    pub messages: BTreeMap<String, Vec<BTreeMap<String, IntType>>>,
}

impl Frames {
    /// The fields of a kind of message, in order.
    pub fn fields(&self, kind: &str) -> Option<Vec<(&str, IntType)>> {
        let fields = self.messages.get(kind)?;
        Some(
            fields
                .iter()
                .flat_map(|f| f.iter().map(|(name, ty)| (name.as_str(), *ty)))
                .collect(),
        )
    }

    /// The body's size of a kind of message.
    pub fn body_size(&self, kind: &str) -> Option<usize> {
        Some(self.fields(kind)?.iter().map(|(_, t)| t.size()).sum())
    }

    /// The whole frame of `message`: its length, then its fields.
    /// (Checked at load: the kind exists and every field has a value in range.)
    pub fn encode(&self, message: &Message) -> Vec<u8> {
        let fields = self.fields(&message.kind).unwrap_or_default();
        let mut body = Vec::new();
        for (name, ty) in &fields {
            ty.encode(message.values.get(*name).copied().unwrap_or(0), &mut body);
        }
        let mut frame = Vec::new();
        self.length.encode(body.len() as i128, &mut frame);
        frame.extend_from_slice(&body);
        frame
    }

    /// The fields of a body of `kind`, decoded.
    pub fn decode(&self, kind: &str, body: &[u8]) -> Vec<(String, i128)> {
        let mut at = 0;
        let mut out = Vec::new();
        for (name, ty) in self.fields(kind).unwrap_or_default() {
            let Some(bytes) = body.get(at..at + ty.size()) else {
                break;
            };
            out.push((name.to_string(), ty.decode(bytes)));
            at += ty.size();
        }
        out
    }

    /// Whether the spec's messages are well formed: every field once, and
    /// at least one field each.
    pub(super) fn check(&self) -> Result<(), String> {
        for (kind, fields) in &self.messages {
            let names: Vec<&String> = fields.iter().flat_map(|f| f.keys()).collect();
            if names.is_empty() {
                return Err(format!("expected message `{kind}` to have at least one field"));
            }
            if fields.iter().any(|f| f.len() != 1) {
                return Err(format!(
                    "expected message `{kind}`'s fields as a list of `name: type`, one each: [opcode: u8, a: i64]"
                ));
            }
            for (i, n) in names.iter().enumerate() {
                if names[..i].contains(n) {
                    return Err(format!("expected message `{kind}` to name field `{n}` once"));
                }
            }
            let size = self.body_size(kind).unwrap_or(0);
            if size as i128 > self.length.range().1 {
                return Err(format!(
                    "expected message `{kind}` ({size} bytes) to fit the length's type `{}`",
                    self.length.name()
                ));
            }
        }
        Ok(())
    }
}

/// One message: its kind and its fields' values, written `{ request: {
/// opcode: 1, a: 5, b: 7 } }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub kind: String,
    pub values: BTreeMap<String, i128>,
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, BTreeMap<String, i128>>::deserialize(d)?;
        let mut entries = map.into_iter();
        match (entries.next(), entries.next()) {
            (Some((kind, values)), None) => Ok(Message { kind, values }),
            _ => Err(serde::de::Error::custom(
                "expected one message, its kind and its fields: `{ request: { opcode: 1, a: 5, b: 7 } }`",
            )),
        }
    }
}

impl schemars::JsonSchema for Message {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Message".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        BTreeMap::<String, BTreeMap<String, i64>>::json_schema(generator)
    }
}

impl Message {
    /// `request {opcode: 1, a: 5, b: 7}`, fields in the format's order.
    pub fn describe(&self, frames: Option<&Frames>) -> String {
        let order: Vec<String> = frames
            .and_then(|f| f.fields(&self.kind))
            .map(|fields| fields.iter().map(|(n, _)| n.to_string()).collect())
            .unwrap_or_else(|| self.values.keys().cloned().collect());
        let fields: Vec<String> = order
            .iter()
            .filter_map(|n| self.values.get(n).map(|v| format!("{n}: {v}")))
            .collect();
        format!("{} {{{}}}", self.kind, fields.join(", "))
    }
}

/// `send_message: { on: a, message: { request: { opcode: 1, a: 5, b: 7 } } }`
/// or `messages: [...]`, several frames written together (coalesced, one
/// write unless `chunk` or `sizes` cut it): each frame is the length, then
/// the fields, big-endian. `chunk: 1, gap: 5ms` writes a frame a byte at a
/// time.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "RawSendMessage")]
#[schemars(with = "RawSendMessage")]
pub struct SendMessage {
    pub on: Option<Name>,
    pub messages: Vec<Message>,
    pub split: Split,
    pub gap: Option<TimeSpan>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawSendMessage {
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    on: Option<Name>,
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    messages: Option<Vec<Message>>,
    #[serde(default)]
    chunk: Option<Size>,
    #[serde(default)]
    sizes: Option<Vec<Size>>,
    #[serde(default)]
    gap: Option<TimeSpan>,
}

impl TryFrom<RawSendMessage> for SendMessage {
    type Error = String;
    fn try_from(raw: RawSendMessage) -> Result<Self, String> {
        let messages = match (raw.message, raw.messages) {
            (Some(m), None) => vec![m],
            (None, Some(ms)) if !ms.is_empty() => ms,
            _ => return Err("expected either `message` (one) or `messages` (a list of at least one)".into()),
        };
        let split = Split::from_keys(raw.chunk, raw.sizes)?;
        Ok(SendMessage {
            on: raw.on,
            messages,
            split,
            gap: raw.gap,
        })
    }
}

/// `expect_message: { on: a, message: { response: { status: 0, result: 12 } } }`:
/// the next frame on the connection is this message: its length is the
/// size of the kind's body, and each field holds its value (a field left
/// out may hold anything). A failure names each field that differs:
/// "result: expected -9223372036854775808, got 0".
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectMessage {
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub on: Option<Name>,
    pub message: Message,
    #[serde(default)]
    pub within: Option<TimeSpan>,
    /// A clause the scenario's own check relies on: a failure of this step
    /// is that clause's (a server that writes integers in host order fails
    /// every scenario's first exchange).
    #[serde(default)]
    pub precondition: Option<String>,
}

impl Keyword for SendMessage {
    fn describe(&self) -> String {
        format!(
            "send {}{}",
            self.messages
                .iter()
                .map(|m| m.describe(None))
                .collect::<Vec<_>>()
                .join(", "),
            on_words(&self.on)
        )
    }
    fn check(&self, checker: &mut Checker<'_>, _scope: &mut Scope, at: Location) {
        for m in &self.messages {
            checker.message(m, true, at);
        }
    }
}

impl Keyword for ExpectMessage {
    fn describe(&self) -> String {
        format!(
            "wait for the frame {}{}",
            self.message.describe(None),
            on_words(&self.on)
        )
    }
    fn check(&self, checker: &mut Checker<'_>, _scope: &mut Scope, at: Location) {
        checker.message(&self.message, false, at)
    }
    fn precondition(&self) -> Option<&str> {
        self.precondition.as_deref()
    }
}
