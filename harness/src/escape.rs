//! Bytes as a person can read them: printable ASCII as is, the rest escaped.
//! And text a submission wrote, made safe to print on a terminal.

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

/// Text that came from a submission (its stderr, its build output, its
/// name), as a terminal must show it: a program's escape sequences and
/// carriage returns could otherwise rewrite the report's lines above (a
/// forged PASS, a forged score). Every control character is shown escaped:
/// ESC as `\x1b`, CR as `\r`, the other C0 controls and DEL as `\xNN`, C1
/// controls and the bidi overrides and isolates (U+202A-U+202E,
/// U+2066-U+2069) as `\u{...}`. Newlines and tabs are kept, for text
/// printed as lines; printable text, backslashes included, is unchanged.
pub fn for_terminal(text: &str) -> String {
    terminal(text, true)
}

/// `for_terminal` for text printed within one line: newlines and tabs
/// escaped too (`\n`, `\t`), so that it cannot start a line of its own.
pub fn for_terminal_line(text: &str) -> String {
    terminal(text, false)
}

fn terminal(text: &str, keep_lines: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\t' if keep_lines => out.push(c),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0'..='\x1f' | '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            '\u{80}'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            _ => out.push(c),
        }
    }
    out
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

/// `ECONNRESET (Connection reset by peer)`.
pub fn os_error(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => format!("{} ({})", nix::errno::Errno::from_raw(code), e.kind()),
        None => e.to_string(),
    }
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

    #[test]
    fn terminal_text_shows_its_controls_escaped() {
        let forged = "\r\x1b[2K\x1b[1APASS\x07 \x7f\u{9b}2J \u{202e}gnp.exe\u{2066}\nscore:\t54/54\n";
        assert_eq!(
            for_terminal(forged),
            "\\r\\x1b[2K\\x1b[1APASS\\x07 \\x7f\\u{9b}2J \\u{202e}gnp.exe\\u{2066}\nscore:\t54/54\n"
        );
        assert_eq!(for_terminal_line("a\nb\tc\r"), "a\\nb\\tc\\r");
        // Printable text is unchanged, backslashes and non-ASCII included.
        let plain = "echoserver.c:12:5: warning: unused variable 'x' [-Wunused-variable] \\x1b — é ✓";
        assert_eq!(for_terminal(plain), plain);
        assert_eq!(for_terminal_line(plain), plain);
        assert!(!for_terminal(forged).contains(['\x1b', '\r']));
    }
}
