//! Bytes as a person can read them: printable ASCII as is, the rest escaped.

/// `"hello\n"`, with at most `max` bytes shown and the rest counted.
pub fn quote(bytes: &[u8], max: usize) -> String {
    let mut out = String::from("\"");
    for &b in bytes.iter().take(max) {
        push_escaped(&mut out, b);
    }
    out.push('"');
    if bytes.len() > max {
        out.push_str(&format!("... ({} bytes in all)", bytes.len()));
    }
    out
}

pub fn push_escaped(out: &mut String, b: u8) {
    match b {
        b'\n' => out.push_str("\\n"),
        b'\r' => out.push_str("\\r"),
        b'\t' => out.push_str("\\t"),
        b'"' => out.push_str("\\\""),
        b'\\' => out.push_str("\\\\"),
        0x20..=0x7e => out.push(b as char),
        _ => out.push_str(&format!("\\x{b:02x}")),
    }
}

/// "1 byte", "12 bytes".
pub fn bytes(n: usize) -> String {
    if n == 1 {
        "1 byte".into()
    } else {
        format!("{n} bytes")
    }
}

/// Where two byte strings first differ, shown around that place: what a
/// student needs to find the bug in a megabyte echo.
pub fn first_difference(expected: &[u8], got: &[u8]) -> Option<String> {
    let at = expected
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .or_else(|| (expected.len() != got.len()).then(|| expected.len().min(got.len())))?;
    let from = at.saturating_sub(16);
    let window = |s: &[u8]| quote(&s[from.min(s.len())..(at + 16).min(s.len())], 64);
    Some(format!(
        "first difference at byte {at}:\n    expected ...{}\n    got      ...{}",
        window(expected),
        window(got)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(quote(b"hi\n\x00", 10), "\"hi\\n\\x00\"");
        assert_eq!(quote(b"abcdef", 3), "\"abc\"... (6 bytes in all)");
    }

    #[test]
    fn finds_first_difference() {
        assert!(first_difference(b"abc", b"abc").is_none());
        assert!(first_difference(b"abc", b"abd").unwrap().contains("byte 2"));
        assert!(first_difference(b"abc", b"ab").unwrap().contains("byte 2"));
    }
}
