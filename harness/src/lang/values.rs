//! Scalar values of the spec language: durations, sizes and payloads, and
//! the bounds a step has when it names none.
//!
//! Each parses from the YAML scalar an instructor writes (`5ms`, `1MiB`) and
//! fails with a message that says what was expected; serde-saphyr attaches the
//! location of the offending scalar.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::time::Duration;

/// Bound of a step that names none: generous, since it only guards against
/// a hang; a passing run never waits it out.
pub const DEFAULT_WITHIN: Duration = Duration::from_secs(2);
/// The handouts' readiness bound.
pub const DEFAULT_READY: Duration = Duration::from_secs(2);
/// How long `expect_exit` waits by default.
pub const DEFAULT_EXIT: Duration = Duration::from_secs(5);
pub const DEFAULT_SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);

/// A step's `within`, or the default bound.
pub fn within(w: Option<TimeSpan>) -> Duration {
    w.map(|s| s.0).unwrap_or(DEFAULT_WITHIN)
}

/// A duration written `250ms`, `2s`, `1.5s` or `1m`. (Not a span of source
/// text: those are serde-saphyr's `Span` and `Location`.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeSpan(pub Duration);

impl TimeSpan {
    pub fn parse(text: &str) -> Result<TimeSpan, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let value: f64 = number
            .parse()
            .map_err(|_| format!("a duration such as `250ms` or `2s`, found `{text}`"))?;
        let seconds = match unit.trim() {
            "ms" => value / 1000.0,
            "s" => value,
            "m" | "min" => value * 60.0,
            "" => return Err(format!("a duration with a unit (`{text}ms` or `{text}s`)")),
            other => return Err(format!("a duration unit `ms`, `s` or `m`, found `{other}`")),
        };
        if !seconds.is_finite() || seconds > 3600.0 {
            return Err(format!("a duration of at most an hour, found `{text}`"));
        }
        // Every duration of a spec is a bound to wait within, a time to
        // watch, or a gap: at zero, a bound can only fail and a watch or a
        // gap checks or does nothing.
        if seconds < 0.001 {
            return Err(format!(
                "a duration of at least 1ms, found `{text}` (to have none, leave the key out)"
            ));
        }
        Ok(TimeSpan(Duration::from_secs_f64(seconds)))
    }
}

impl fmt::Display for TimeSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl<'de> Deserialize<'de> for TimeSpan {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        TimeSpan::parse(&text).map_err(|e| de::Error::custom(format!("expected {e}")))
    }
}

/// A byte count written `4096`, `64KiB` or `1MiB`. Negative sizes are errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub usize);

impl Size {
    pub fn parse(text: &str) -> Result<Size, String> {
        let text = text.trim();
        let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        if number.is_empty() {
            return Err(format!("a size such as `4096`, `64KiB` or `1MiB`, found `{text}`"));
        }
        let n: usize = number
            .parse()
            .map_err(|_| format!("a size that fits, found `{text}`"))?;
        let factor = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            other => return Err(format!("a size unit `B`, `KiB` or `MiB`, found `{other}`")),
        };
        n.checked_mul(factor)
            .filter(|&n| n <= 1 << 30)
            .map(Size)
            .ok_or_else(|| format!("a size of at most 1GiB, found `{text}`"))
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as `4096`, `64KiB` or `1MiB`")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                usize::try_from(v)
                    .ok()
                    .filter(|&n| n <= 1 << 30)
                    .map(Size)
                    .ok_or_else(|| E::custom("expected a size of at most 1GiB"))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                if v < 0 {
                    return Err(E::custom(format!("expected a size of zero or more, found {v}")));
                }
                self.visit_u64(v as u64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                Size::parse(v).map_err(|e| E::custom(format!("expected {e}")))
            }
        }
        d.deserialize_any(V)
    }
}

/// Bytes the harness sends, or expects, or feeds to a program's stdin.
///
/// Written as a plain string (`"hello\n"`), or a map with exactly one of
/// `text`, `hex` or `generate`, optionally followed by `then` (text appended,
/// e.g. the newline after a generated megabyte).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    pub source: PayloadSource,
    pub then: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayloadSource {
    Text(String),
    Hex(Vec<u8>),
    /// `size` bytes: `repeat` cycled, or pseudo-random bytes from `seed`.
    Generate {
        size: usize,
        fill: Fill,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fill {
    Repeat(Vec<u8>),
    Seed(u64),
    /// Random lines of letters and digits (see `seeded_lines`).
    Lines(u64),
}

/// `generate: { size: 1MiB, repeat: "ab" }` or `{ size: 1MiB, seed: 7 }`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Generate {
    pub size: Size,
    #[serde(default)]
    pub repeat: Option<String>,
    #[serde(default)]
    pub seed: Option<u64>,
    /// With `seed`: random lines of letters and digits instead of random
    /// bytes, for scenarios about size and timing rather than byte values (a
    /// server that stops at a zero byte must fail the byte-value scenario,
    /// not every scenario that sends a megabyte).
    #[serde(default)]
    pub lines: bool,
}

impl Payload {
    /// The payload keys of a step (`text`, `hex`, `generate`, `then`), which
    /// each step that carries bytes repeats: serde's `flatten` can't be
    /// combined with `deny_unknown_fields`, and unknown keys must stay
    /// errors. `Ok(None)` when none is given.
    pub fn from_keys(
        text: Option<String>,
        hex: Option<String>,
        generate: Option<Generate>,
        then: Option<String>,
    ) -> Result<Option<Payload>, String> {
        let source = match (text, hex, generate) {
            (None, None, None) => return Ok(then.map(|t| Payload::text(&t))),
            (Some(t), None, None) => PayloadSource::Text(t),
            (None, Some(h), None) => PayloadSource::Hex(parse_hex(&h)?),
            (None, None, Some(g)) => {
                let fill = match (g.repeat, g.seed, g.lines) {
                    (Some(r), None, false) if !r.is_empty() => Fill::Repeat(r.into_bytes()),
                    (None, Some(s), false) => Fill::Seed(s),
                    (None, Some(s), true) => Fill::Lines(s),
                    (_, _, true) => return Err("`generate` with `lines` needs a `seed` (and no `repeat`)".into()),
                    _ => return Err("`generate` with exactly one of `repeat` (non-empty) or `seed`".into()),
                };
                PayloadSource::Generate { size: g.size.0, fill }
            }
            _ => return Err("only one of `text`, `hex` and `generate`".into()),
        };
        Ok(Some(Payload { source, then }))
    }

    /// Like `from_keys`, for a step that must carry bytes; `what` says
    /// which ("what to send").
    pub fn required(
        text: Option<String>,
        hex: Option<String>,
        generate: Option<Generate>,
        then: Option<String>,
        what: &str,
    ) -> Result<Payload, String> {
        match Payload::from_keys(text, hex, generate, then) {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(format!("expected {what}: `text`, `hex` or `generate`")),
            Err(e) => Err(format!("expected {e}")),
        }
    }

    pub fn text(s: &str) -> Payload {
        Payload {
            source: PayloadSource::Text(s.to_string()),
            then: None,
        }
    }

    /// The bytes themselves. Generation is deterministic: the same spec always
    /// produces the same bytes, so transcripts and snapshots are stable.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = match &self.source {
            PayloadSource::Text(t) => t.as_bytes().to_vec(),
            PayloadSource::Hex(b) => b.clone(),
            PayloadSource::Generate {
                size,
                fill: Fill::Repeat(pattern),
            } => pattern.iter().copied().cycle().take(*size).collect(),
            PayloadSource::Generate {
                size,
                fill: Fill::Seed(seed),
            } => seeded_bytes(*seed, *size),
            PayloadSource::Generate {
                size,
                fill: Fill::Lines(seed),
            } => seeded_lines(*seed, *size),
        };
        if let Some(then) = &self.then {
            out.extend_from_slice(then.as_bytes());
        }
        out
    }

    /// How many bytes `bytes` makes, without making them.
    pub fn size(&self) -> usize {
        let body = match &self.source {
            PayloadSource::Text(t) => t.len(),
            PayloadSource::Hex(b) => b.len(),
            PayloadSource::Generate { size, .. } => *size,
        };
        body + self.then.as_ref().map_or(0, |t| t.len())
    }

    /// How the payload reads in a transcript: short texts verbatim, generated
    /// data by its recipe so a megabyte doesn't flood the report.
    pub fn describe(&self) -> String {
        let main = match &self.source {
            PayloadSource::Text(t) => crate::escape::quote(t.as_bytes(), 80),
            PayloadSource::Hex(b) => crate::escape::quote(b, 80),
            PayloadSource::Generate {
                size,
                fill: Fill::Repeat(p),
            } => {
                format!("{size} bytes of {}", crate::escape::quote(p, 16))
            }
            PayloadSource::Generate {
                size,
                fill: Fill::Seed(s),
            } => {
                format!("{size} random bytes (seed {s})")
            }
            PayloadSource::Generate {
                size,
                fill: Fill::Lines(s),
            } => {
                format!("{size} bytes of random lines (seed {s})")
            }
        };
        match &self.then {
            Some(t) => format!("{main} + {}", crate::escape::quote(t.as_bytes(), 16)),
            None => main,
        }
    }
}

/// xorshift64*: a tiny, well-known generator. Not for secrets: for test data
/// whose every byte value occurs and which no echo server could guess.
pub fn seeded_bytes(seed: u64, size: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = vec![0u8; size.next_multiple_of(8)];
    for word in out.chunks_exact_mut(8) {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        word.copy_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(size);
    out
}

/// Random lines: letters and digits from the same generator, a newline on
/// average every 64 bytes and at least every 128. No zero byte, nothing a
/// terminal or a C string would choke on.
pub fn seeded_lines(seed: u64, size: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut line = 0;
    seeded_bytes(seed, size)
        .into_iter()
        .map(|r| {
            line += 1;
            if r < 4 || line == 128 {
                line = 0;
                b'\n'
            } else {
                ALPHABET[r as usize % ALPHABET.len()]
            }
        })
        .collect()
}

pub(crate) fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err("an even number of hex digits".into());
    }
    digits
        .chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).unwrap_or("");
            u8::from_str_radix(s, 16).map_err(|_| format!("hex digits, found `{s}`"))
        })
        .collect()
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize, schemars::JsonSchema)]
        #[serde(deny_unknown_fields)]
        struct Map {
            text: Option<String>,
            hex: Option<String>,
            generate: Option<Generate>,
            then: Option<String>,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Payload;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, or a map with one of `text`, `hex`, `generate`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Payload, E> {
                Ok(Payload::text(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Payload, A::Error> {
                let m = Map::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Payload::from_keys(m.text, m.hex, m.generate, m.then)
                    .and_then(|p| p.ok_or_else(|| "one of `text`, `hex` or `generate`".to_string()))
                    .map_err(|e| de::Error::custom(format!("expected {e}")))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(TimeSpan::parse("5ms").unwrap().0, Duration::from_millis(5));
        assert_eq!(TimeSpan::parse("1.5s").unwrap().0, Duration::from_millis(1500));
        assert!(TimeSpan::parse("5").unwrap_err().contains("with a unit"));
        assert!(TimeSpan::parse("5 hours").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(Size::parse("1MiB").unwrap().0, 1 << 20);
        assert_eq!(Size::parse("64KiB").unwrap().0, 65536);
        assert!(Size::parse("-1").is_err());
        assert!(Size::parse("3GB").is_err());
    }

    #[test]
    fn seeded_lines_are_printable_lines() {
        let a = seeded_lines(2, 1 << 20);
        assert_eq!(a, seeded_lines(2, 1 << 20));
        assert!(a.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'\n'));
        assert!(a.split(|b| *b == b'\n').all(|line| line.len() < 128));
        let lines = a.iter().filter(|b| **b == b'\n').count();
        assert!((1 << 20) / lines < 100, "{lines} lines");
    }

    #[test]
    fn seeded_bytes_are_stable_and_varied() {
        let a = seeded_bytes(7, 4096);
        assert_eq!(a, seeded_bytes(7, 4096));
        assert_ne!(a, seeded_bytes(8, 4096));
        let distinct: std::collections::HashSet<u8> = a.iter().copied().collect();
        assert_eq!(distinct.len(), 256);
    }
}
