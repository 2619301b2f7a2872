//! `http://HOST[:PORT]/PATH`, taken apart.
//!
//! Just enough of RFC 3986 for `httpget`: the scheme must be `http`, the
//! authority is a host name or IPv4 address and an optional port (80 when
//! left out), and the rest is the path (with its query) that goes into the
//! request line.

/// The parts of an `http://` URL that a client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// A host name (`localhost`) or a dotted IPv4 address.
    pub host: String,
    /// The TCP port; 80 when the URL names none.
    pub port: u16,
    /// The request target: `/` and everything up to an optional `#`.
    pub path: String,
}

/// The well-known port of HTTP.
pub const DEFAULT_PORT: u16 = 80;

impl Url {
    /// The value of the `Host` header: the host, and the port unless it is
    /// the default one (RFC 9110, section 7.2).
    pub fn host_header(&self) -> String {
        if self.port == DEFAULT_PORT {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Parses `http://HOST[:PORT][/PATH]`. The error says what is wrong.
pub fn parse(url: &str) -> Result<Url, String> {
    // The scheme is case-insensitive: HTTP:// is fine too.
    let rest = match url.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("http://") => &url[7..],
        _ => return Err(format!("{url:?} is not an http:// URL")),
    };
    // The authority ends where the path (or a query or fragment) begins.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.contains('@') {
        return Err(format!("{url:?}: user names are not supported"));
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => {
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("{url:?}: bad port {port:?}"))?;
            (host, port)
        }
        None => (authority, DEFAULT_PORT),
    };
    if host.is_empty() {
        return Err(format!("{url:?}: no host"));
    }

    // A fragment (`#…`) is for the browser, never sent to the server.
    let path = path.split('#').next().unwrap_or("");
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        // `http://host` or `http://host?x`: the path is `/`.
        format!("/{path}")
    };
    Ok(Url {
        host: host.to_string(),
        port,
        path: encode_unsafe(&path),
    })
}

/// Percent-encodes the bytes that may not appear in a request line (spaces,
/// control characters, non-ASCII), so that `GET /a b` cannot break the
/// request line in three. Everything else, `%` included, is sent as the
/// user typed it: `%20` in the URL already is an escape.
fn encode_unsafe(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for &byte in path.as_bytes() {
        if byte <= b' ' || byte >= 0x7f {
            out.push_str(&format!("%{byte:02X}"));
        } else {
            out.push(byte as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(host: &str, port: u16, path: &str) -> Url {
        Url {
            host: host.into(),
            port,
            path: path.into(),
        }
    }

    #[test]
    fn good_urls() {
        assert_eq!(
            parse("http://localhost:8080/a/b.html").unwrap(),
            url("localhost", 8080, "/a/b.html")
        );
        assert_eq!(parse("http://127.0.0.1/").unwrap(), url("127.0.0.1", 80, "/"));
        assert_eq!(parse("HTTP://example.com").unwrap(), url("example.com", 80, "/"));
        assert_eq!(parse("http://h:81?q=1").unwrap(), url("h", 81, "/?q=1"));
        assert_eq!(parse("http://h/x?y#frag").unwrap(), url("h", 80, "/x?y"));
        assert_eq!(parse("http://h/a b").unwrap(), url("h", 80, "/a%20b"));
    }

    #[test]
    fn host_header() {
        assert_eq!(parse("http://h/").unwrap().host_header(), "h");
        assert_eq!(parse("http://h:80/").unwrap().host_header(), "h");
        assert_eq!(parse("http://h:8080/").unwrap().host_header(), "h:8080");
    }

    #[test]
    fn bad_urls() {
        for bad in [
            "https://h/",
            "h:80/",
            "http://",
            "http://:80/",
            "http://h:x/",
            "http://h:70000/",
            "http://h:/",
            "http://u@h/",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
