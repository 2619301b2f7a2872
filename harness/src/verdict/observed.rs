//! What a failing step saw of the cause in the kernel, typed; and, chosen
//! from it here and only here, what a student reads of it: what was seen,
//! and the advice that fits every failure with this cause (the report says
//! it once under the scenarios it failed).

use crate::escape;
use serde::ser::{Serialize, SerializeStruct, Serializer};

/// A cause the kernel showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed {
    /// A forking server's main process still holds a descriptor of the
    /// connection, which therefore never ends for the client.
    KeptCopy { server: String },
    /// The program reset the connection, closing its socket with bytes on
    /// it that it had not read, while it runs on (or after it ended well).
    UnreadReset { program: String, runs_on: bool },
    /// A client printed a datagram that was not the reply to its request
    /// outstanding, and went on.
    NotTheReply {
        client: String,
        printed: Vec<u8>,
        request: Vec<u8>,
        /// Where it came from when not from the server's port: the
        /// grader's endpoint that sent it. `None`: a late copy of an
        /// earlier reply from the server's port.
        foreign: Option<String>,
    },
    /// A client printed a line twice in a row after a relay duplicated or
    /// held back replies (`relay_replies`, in words).
    PrintedTwice {
        client: String,
        line: Vec<u8>,
        relay_replies: Vec<String>,
    },
}

/// A connection the program reset by closing it unread.
const UNREAD_RESET_ADVICE: &str = "Closing a socket that still holds bytes you have not read \
    makes the kernel reset the connection, and the reset can destroy your last answer before the peer \
    reads it. To end a connection gracefully: shutdown(fd, SHUT_WR), read until read() returns 0 (or for \
    a moment), then close(fd).";

/// A connection whose copy the parent kept.
const KEPT_COPY_ADVICE: &str = "After fork(), the parent must close() its copy of the accepted \
    connection at once: the client sees EOF only when every descriptor of the connection is closed, so \
    a copy left in the parent keeps every connection open (and leaks a descriptor per client).";

/// A datagram taken for the reply.
const NOT_THE_REPLY_ADVICE: &str = "The reply is the datagram whose sender (the address recvfrom() fills \
    in) is the server's address and port and whose bytes are exactly those of the request outstanding. \
    Check both for every datagram; drop anything else without printing it, and keep waiting on the same \
    deadline.";

impl Observed {
    /// What was seen, for this scenario.
    pub fn seen(&self) -> String {
        match self {
            Observed::KeptCopy { server } => {
                format!("{server}'s main process, which forks, still holds a descriptor of this connection")
            }
            Observed::UnreadReset { program, runs_on } => format!(
                "{program} reset the connection while it {}: it closed its socket with bytes on it that it had not read",
                if *runs_on { "runs on" } else { "ended normally" }
            ),
            Observed::NotTheReply {
                client,
                printed,
                request,
                foreign,
            } => {
                let what = match foreign {
                    Some(from) => format!(
                        "{}, which came from another port than the server's (the grader's `{from}`)",
                        escape::quote(printed, 60),
                    ),
                    None => format!(
                        "{}, a late copy of an earlier reply from the server's port",
                        escape::quote(printed, 60)
                    ),
                };
                format!(
                    "{client} printed {} and went on while its request {} was outstanding: it took {what} for its reply",
                    escape::quote(printed, 60),
                    escape::quote(request, 60)
                )
            }
            Observed::PrintedTwice {
                client,
                line,
                relay_replies,
            } => format!(
                "{client} printed {} twice in a row; on the way, {}: it took a copy of a reply it had already \
                 printed for the reply to its next request",
                escape::quote(line, 60),
                relay_replies.join(", ")
            ),
        }
    }

    /// What to do about it: the hint for every failure with this cause.
    pub fn advice(&self) -> &'static str {
        match self {
            Observed::KeptCopy { .. } => KEPT_COPY_ADVICE,
            Observed::UnreadReset { .. } => UNREAD_RESET_ADVICE,
            Observed::NotTheReply { .. } | Observed::PrintedTwice { .. } => NOT_THE_REPLY_ADVICE,
        }
    }
}

/// In a report, the words: `{ "seen": ..., "advice": ... }`.
impl Serialize for Observed {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("Observed", 2)?;
        out.serialize_field("seen", &self.seen())?;
        out.serialize_field("advice", self.advice())?;
        out.end()
    }
}

#[cfg(test)]
mod tests {
    use super::Observed;

    /// Each cause in words: what was seen names the program, and the
    /// report's JSON carries the same two texts.
    #[test]
    fn each_cause_is_worded_with_its_advice() {
        let causes = [
            Observed::KeptCopy {
                server: "server".into(),
            },
            Observed::UnreadReset {
                program: "server".into(),
                runs_on: true,
            },
            Observed::NotTheReply {
                client: "client".into(),
                printed: b"b".to_vec(),
                request: b"a".to_vec(),
                foreign: Some("x".into()),
            },
            Observed::PrintedTwice {
                client: "client".into(),
                line: b"a".to_vec(),
                relay_replies: vec!["reply 2: duplicated".into()],
            },
        ];
        for cause in &causes {
            let seen = cause.seen();
            assert!(seen.contains("server") || seen.contains("client"), "{seen}");
            assert!(!cause.advice().is_empty());
            let json = serde_json::to_value(cause).unwrap();
            assert_eq!(json["seen"], seen);
            assert_eq!(json["advice"], cause.advice());
        }
        assert!(causes[2].seen().contains("the grader's `x`"), "{}", causes[2].seen());
        assert!(causes[3].seen().contains("reply 2: duplicated"), "{}", causes[3].seen());
    }
}
