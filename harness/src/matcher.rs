//! What an expectation waits for, and whether the bytes seen so far meet it.
//!
//! One matcher serves every kind of expectation: the bytes of a connection
//! (`expect`), what a program printed (`expect_output`), and later datagrams
//! and HTTP bodies. It looks at bytes and says done, not yet, or never; the
//! step that uses it knows whether more bytes can still come and phrases the
//! failure in its own terms.

use bytes::Bytes;

use crate::escape;

/// The expected bytes are `Bytes`, shared rather than copied: an echo of a
/// megabyte is expected as the very bytes that were sent (a fresh copy costs
/// a millisecond in page faults alone).
#[derive(Debug)]
pub enum Matcher {
    /// Exactly these bytes (for a stream: these bytes next).
    Exact(Bytes),
    /// These bytes first; whatever follows them is taken too.
    Prefix(Bytes),
    /// These bytes somewhere; everything up to their end is taken.
    Contains(Bytes),
    /// A match anywhere (the regex searches); everything up to its end is
    /// taken, what precedes the match included.
    Regex(regex::bytes::Regex),
    /// Any this many bytes.
    Size(usize),
    /// These lines (each ending in `\n`), each exactly once, in any order:
    /// as many whole lines as there are are taken.
    LinesAnyOrder(Vec<Vec<u8>>),
    /// Nothing at all.
    Empty,
    /// At least one byte.
    NonEmpty,
}

/// What the bytes seen so far say about a matcher.
#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    /// Met by the first `n` bytes.
    Done(usize),
    /// Not met yet; more bytes may meet it.
    More,
    /// Never met, whatever follows: the bytes already differ.
    Differs,
}

impl Matcher {
    /// The bytes `got` are the start of a stream that may grow.
    pub fn check(&self, got: &[u8]) -> Check {
        match self {
            Matcher::Exact(want) | Matcher::Prefix(want) => {
                let n = got.len().min(want.len());
                if got[..n] != want[..n] {
                    Check::Differs
                } else if got.len() < want.len() {
                    Check::More
                } else if matches!(self, Matcher::Prefix(_)) {
                    Check::Done(got.len())
                } else {
                    Check::Done(want.len())
                }
            }
            Matcher::Contains(want) => match got.windows(want.len().max(1)).position(|w| w == &want[..]) {
                Some(at) => Check::Done(at + want.len()),
                None => Check::More,
            },
            Matcher::Regex(re) => match re.find(got) {
                Some(m) => Check::Done(m.end()),
                None => Check::More,
            },
            Matcher::LinesAnyOrder(want) => lines_any_order(want, got),
            Matcher::Size(n) if got.len() >= *n => Check::Done(*n),
            Matcher::Size(_) => Check::More,
            Matcher::Empty if got.is_empty() => Check::Done(0),
            Matcher::Empty => Check::Differs,
            Matcher::NonEmpty if got.is_empty() => Check::More,
            Matcher::NonEmpty => Check::Done(got.len()),
        }
    }

    /// `got` is everything so far, and must be matched whole: `Exact` is
    /// then "equals", and bytes past its end make it differ.
    pub fn check_whole(&self, got: &[u8]) -> Check {
        match (self, self.check(got)) {
            (Matcher::Exact(want), Check::Done(_)) if got.len() > want.len() => Check::Differs,
            (_, check) => check,
        }
    }

    /// True for an expectation on a stream that any bytes meet, none
    /// included: `size: 0`, an empty text or prefix, an empty `contains`.
    pub fn matches_nothing_at_all(&self) -> bool {
        match self {
            Matcher::Exact(b) | Matcher::Prefix(b) | Matcher::Contains(b) => b.is_empty(),
            Matcher::Size(n) => *n == 0,
            Matcher::LinesAnyOrder(lines) => lines.is_empty(),
            Matcher::Regex(r) => r.is_match(b""),
            Matcher::Empty => true,
            Matcher::NonEmpty => false,
        }
    }

    /// The expectation in words, for failures.
    pub fn describe(&self) -> String {
        match self {
            Matcher::Exact(b) => escape::quote(b, 80),
            Matcher::Prefix(b) => format!("bytes starting with {}", escape::quote(b, 80)),
            Matcher::Contains(b) => format!("bytes containing {}", escape::quote(b, 80)),
            Matcher::Regex(r) => format!("bytes matching /{}/", r.as_str()),
            Matcher::Size(n) => format!("{n} bytes"),
            Matcher::LinesAnyOrder(lines) => {
                let shown: Vec<String> = lines.iter().take(4).map(|l| escape::quote(l, 40)).collect();
                let more = if lines.len() > 4 { ", ..." } else { "" };
                format!("these {} lines in any order: {}{more}", lines.len(), shown.join(", "))
            }
            Matcher::Empty => "nothing".into(),
            Matcher::NonEmpty => "at least one byte".into(),
        }
    }

    /// Where `got` leaves what an `Exact` or `Prefix` matcher wants: the
    /// two, quoted, and the first difference. Other matchers have no
    /// expected bytes to show.
    pub fn mismatch(&self, got: &[u8]) -> Option<(String, String, String)> {
        let (Matcher::Exact(want) | Matcher::Prefix(want)) = self else {
            return None;
        };
        let n = got.len().min(want.len());
        let diff = escape::first_difference(&want[..n], &got[..n])
            .or_else(|| escape::first_difference(want, got))
            .unwrap_or_default();
        Some((escape::quote(want, 200), escape::quote(got, 200), diff))
    }

    /// For bytes that stopped short of what an `Exact` or `Prefix` matcher
    /// wants (a stream that ended or went quiet): that they are a correct
    /// start, and how much never came. Bytes that differ fail earlier, with
    /// `mismatch`.
    pub fn shortfall(&self, got: &[u8]) -> Option<String> {
        let (Matcher::Exact(want) | Matcher::Prefix(want)) = self else {
            return None;
        };
        if got.is_empty() || got.len() >= want.len() || !want.starts_with(got) {
            return None;
        }
        Some(format!(
            "what arrived ({}) is a correct start; the remaining {} never came",
            escape::bytes(got.len()),
            escape::bytes(want.len() - got.len())
        ))
    }
}

/// Whole lines of `got`, one by one, each taken from what is still wanted:
/// done once all are there, never once a line is not wanted (or wanted no
/// more: each once).
fn lines_any_order(want: &[Vec<u8>], got: &[u8]) -> Check {
    let mut left: Vec<&[u8]> = want.iter().map(Vec::as_slice).collect();
    let mut taken = 0;
    while !left.is_empty() {
        let Some(end) = got[taken..].iter().position(|&b| b == b'\n') else {
            return Check::More;
        };
        let line = &got[taken..taken + end + 1];
        match left.iter().position(|l| *l == line) {
            Some(i) => {
                left.swap_remove(i);
                taken += line.len();
            }
            None => return Check::Differs,
        }
    }
    Check::Done(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_on_a_stream_takes_what_it_wants_and_leaves_the_rest() {
        let m = Matcher::Exact(Bytes::from_static(b"hello"));
        assert_eq!(m.check(b"hel"), Check::More);
        assert_eq!(m.check(b"hello world"), Check::Done(5));
        assert_eq!(m.check(b"help"), Check::Differs);
        assert_eq!(m.check_whole(b"hello world"), Check::Differs);
        assert_eq!(m.check_whole(b"hello"), Check::Done(5));
    }

    #[test]
    fn lines_in_any_order_are_each_taken_once() {
        let m = Matcher::LinesAnyOrder(vec![b"a\n".to_vec(), b"b\n".to_vec()]);
        assert_eq!(m.check(b"b\na"), Check::More);
        assert_eq!(m.check(b"b\na\nc\n"), Check::Done(4));
        assert_eq!(m.check(b"a\na\n"), Check::Differs);
        assert_eq!(m.check(b"c\n"), Check::Differs);
    }

    #[test]
    fn searching_matchers_take_everything_up_to_the_match() {
        let re = Matcher::Regex(regex::bytes::Regex::new("w.r").unwrap());
        assert_eq!(re.check(b"hello world!"), Check::Done(9));
        assert_eq!(
            Matcher::Contains(Bytes::from_static(b"lo")).check(b"hello"),
            Check::Done(5)
        );
        assert_eq!(
            Matcher::Prefix(Bytes::from_static(b"he")).check(b"hello"),
            Check::Done(5)
        );
        assert_eq!(Matcher::Size(3).check(b"hello"), Check::Done(3));
    }

    #[test]
    fn empty_and_nonempty() {
        assert_eq!(Matcher::Empty.check(b""), Check::Done(0));
        assert_eq!(Matcher::Empty.check(b"x"), Check::Differs);
        assert_eq!(Matcher::NonEmpty.check(b""), Check::More);
        assert_eq!(Matcher::NonEmpty.check(b"x"), Check::Done(1));
    }
}
