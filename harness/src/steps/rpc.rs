//! Running the `rpc` family (`crate::lang::rpc`): send_message and
//! expect_message, on one connection (`super::run_on`), at the top level or
//! inside `each`, in the format the spec declares under `frames`.

use super::Failing;
use super::{OnContext, RunOn};
use super::{StepError, StepResult};
use crate::conn::{Conn, Outcome};
use crate::lang::rpc::{ExpectMessage, SendMessage};
use crate::lang::values::within;
use crate::transcript::{Mismatch, Wire};

impl RunOn for SendMessage {
    async fn run_on(&self, conn: &mut Conn, cx: &OnContext<'_>) -> StepResult {
        let frames = cx.frames().or_cannot_run()?;
        let bytes: Vec<u8> = self.messages.iter().flat_map(|m| frames.encode(m)).collect();
        let what: Vec<String> = self.messages.iter().map(|m| m.describe(Some(frames))).collect();
        super::tcp::write(conn, bytes, what.join(", "), &self.split, self.gap, None, false).await
    }
}

impl RunOn for ExpectMessage {
    async fn run_on(&self, conn: &mut Conn, cx: &OnContext<'_>) -> StepResult {
        let frames = cx.frames().or_cannot_run()?;
        let t = conn.transcript.clone();
        let want = &self.message;
        let expected = want.describe(Some(frames));
        let prefix = frames.length.size();
        let body = frames.body_size(&want.kind).unwrap_or(0);
        // The frame of the expected kind, by its size: what follows it belongs
        // to the next expectation.
        let matcher = crate::matcher::Matcher::Size(prefix + body);
        let frame = match conn.expect(&matcher, within(self.within)).await {
            Outcome::Matched(bytes) => bytes,
            Outcome::Failed(why) => {
                t.record_wire(
                    &conn.name,
                    Wire::Received {
                        shown: crate::escape::quote(&conn.inbox, 60),
                        bytes: conn.inbox.len(),
                        mismatch: Some(Mismatch {
                            expected: expected.clone(),
                            got: crate::escape::quote(&conn.inbox, 400),
                        }),
                        ended: conn.peer.ended(),
                    },
                );
                return Err(StepError::failed(format!("expected the frame {expected}: {why}")));
            }
        };
        let length = frames.length.decode(&frame[..prefix]);
        let got = frames.decode(&want.kind, &frame[prefix..]);
        let shown = format!(
            "{} {{{}}}",
            want.kind,
            got.iter()
                .map(|(n, v)| format!("{n}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        // What differs, field by field, in the format's order.
        let mut wrong: Vec<String> = Vec::new();
        if length != body as i128 {
            wrong.push(format!("length: expected {body} (a {}), got {length}", want.kind));
        }
        for (name, value) in &got {
            if let Some(expected) = want.values.get(name) {
                if expected != value {
                    wrong.push(format!("{name}: expected {expected}, got {value}"));
                }
            }
        }
        let mismatch = (!wrong.is_empty()).then(|| Mismatch {
            expected: expected.clone(),
            got: shown.clone(),
        });
        t.record_wire(
            &conn.name,
            Wire::Received {
                shown: shown.clone(),
                bytes: frame.len(),
                mismatch,
                ended: None,
            },
        );
        if wrong.is_empty() {
            return Ok(());
        }
        Err(StepError::failed(format!(
            "expected the frame {expected}; {}\n  the frame's bytes: {}",
            wrong.join("; "),
            hex(&frame)
        )))
    }
}

/// `00 00 00 09 00 ...`, for a frame whose fields are not what they seem.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}
