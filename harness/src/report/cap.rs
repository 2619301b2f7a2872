//! Size caps. Every platform has a limit (an environment variable, a file
//! size) and one scenario's runaway output must not push a whole report over
//! it, so each reporter caps what it copies from a scenario, and the ones
//! with a hard limit shrink their caps until the document fits.

/// What one scenario's message may take in any report.
pub const MESSAGE: usize = 8 * 1024;

/// Cuts `text` to at most `max` bytes, keeping its start (what failed) and
/// its end (how it ended), with a marker saying how much went in between.
pub fn cap(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let marker = |cut: usize| format!("\n[... {cut} bytes cut ...]\n");
    // What is cut is less than the whole, so its marker is no longer.
    let room = marker(text.len()).len();
    if max <= room {
        return text[..floor(text, max)].to_string();
    }
    let keep = max - room;
    let head = floor(text, keep / 2);
    let tail = ceil(text, text.len() - (keep - keep / 2));
    format!("{}{}{}", &text[..head], marker(tail - head), &text[tail..])
}

/// Renders with the largest cap of `caps` whose document is at most `limit`
/// bytes; the smallest cap's document if none fits (the caller's limit is
/// then out of reach whatever the messages say).
pub fn fit(limit: usize, render: impl Fn(usize) -> String) -> String {
    let mut cap = MESSAGE;
    loop {
        let text = render(cap);
        if text.len() <= limit || cap == 0 {
            return text;
        }
        cap /= 4;
    }
}

/// The largest char boundary at or below `i`.
fn floor(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The smallest char boundary at or above `i`.
fn ceil(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_whole() {
        assert_eq!(cap("abc", 10), "abc");
    }

    #[test]
    fn long_text_keeps_both_ends_within_the_cap() {
        let text = format!("start{}end", "é".repeat(5000));
        let capped = cap(&text, 100);
        assert!(capped.len() <= 100, "{} bytes", capped.len());
        assert!(capped.starts_with("start") && capped.ends_with("end"), "{capped}");
        // What is kept and what the marker says was cut make up the whole.
        let (head, rest) = capped.split_once("\n[... ").unwrap();
        let (cut, tail) = rest.split_once(" bytes cut ...]\n").unwrap();
        assert_eq!(head.len() + cut.parse::<usize>().unwrap() + tail.len(), text.len());
    }

    #[test]
    fn a_cap_smaller_than_the_marker_keeps_the_start() {
        assert_eq!(cap(&"é".repeat(100), 5), "éé");
    }

    #[test]
    fn fit_shrinks_until_the_document_fits() {
        let long = "x".repeat(100_000);
        let doc = fit(1000, |c| cap(&long, c));
        assert!(doc.len() <= 1000);
    }
}
