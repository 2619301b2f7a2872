//! The JSON Schema of the spec language (`sockgrade schema`), for editors:
//! a YAML language server completes and checks a spec as it is typed.
//!
//! It is derived from the very serde types that load a spec (schemars reads
//! their serde attributes: `deny_unknown_fields`, `rename`, defaults, and
//! `try_from`, whose raw struct is what the YAML holds), so a keyword added
//! to the language is in the schema without anyone remembering it. Only
//! what parses by hand is described here: durations, sizes, signal names,
//! payloads, and the steps whose value may be a bare name.
//!
//! The schema is looser than the loader in one way: rules that span keys
//! (exactly one of `text`/`hex`/`generate`, a `chunk` of at least one byte)
//! are left to `sockgrade check`, whose located messages say more than an
//! editor's "oneOf failed".

use super::program::SignalName;
use super::values::{Generate, Payload, Size, TimeSpan};
use super::RawSpec;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use std::borrow::Cow;
use std::marker::PhantomData;

/// The schema document, draft-07: the draft YAML language servers and most
/// editors understand.
pub fn schema() -> String {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let mut root = generator.into_root_schema_for::<RawSpec>();
    root.insert("title".into(), "sockgrade spec".into());
    root.insert(
        "description".into(),
        "A lab's spec for sockgrade: the programs a submission provides and the scenarios that grade them.".into(),
    );
    serde_json::to_string_pretty(&root).expect("a schema serialises") + "\n"
}

impl JsonSchema for TimeSpan {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration with its unit: `250ms`, `2s`, `1.5s`, `1m` (at most an hour).",
            "type": "string",
            "pattern": r"^\s*[0-9.]+\s*(ms|s|m|min)\s*$",
        })
    }
}

impl JsonSchema for Size {
    fn schema_name() -> Cow<'static, str> {
        "Size".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A byte count: `4096`, `64KiB`, `1MiB` (at most 1GiB).",
            "anyOf": [
                { "type": "integer", "minimum": 0, "maximum": 1u64 << 30 },
                { "type": "string", "pattern": r"^\s*[0-9]+\s*(B|KiB|MiB)?\s*$" },
            ],
        })
    }
}

impl JsonSchema for SignalName {
    fn schema_name() -> Cow<'static, str> {
        "Signal".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A signal by name: `TERM`, `SIGTERM`, `STOP`, `CONT`, `KILL`, ...",
            "type": "string",
            "pattern": "^(SIG)?[A-Z0-9]+$",
        })
    }
}

impl JsonSchema for Payload {
    fn schema_name() -> Cow<'static, str> {
        "Payload".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Bytes: a plain string, or a map with one of `text`, `hex`, `generate`, and optionally `then` (text appended).",
            "anyOf": [
                { "type": "string" },
                {
                    "type": "object",
                    "properties": {
                        "text": { "type": "string" },
                        "hex": { "type": "string", "description": "Hex digits, two per byte; spaces allowed." },
                        "generate": generator.subschema_for::<Generate>(),
                        "then": { "type": "string" },
                    },
                    "additionalProperties": false,
                    "minProperties": 1,
                },
            ],
        })
    }
}

/// A step whose value may be a bare name (`start: server`) or the map of
/// its options (`start: { program: server, within: 1s }`).
pub(super) struct Short<T>(PhantomData<T>);

impl<T: JsonSchema> JsonSchema for Short<T> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        format!("Short_{}", T::schema_name()).into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": "string", "description": "The name alone." },
                generator.subschema_for::<T>(),
            ],
        })
    }
}
