//! The absolute URI of a proxy request: `http://HOST[:PORT][/PATH]`.

/// A URI taken apart. `authority` is `HOST[:PORT]` as the client wrote it:
/// the `Host` field we send when the client sent none.
#[derive(Debug, PartialEq, Eq)]
pub struct Uri {
    pub host: String,
    pub port: u16,
    pub authority: String,
    /// Everything after the authority, query included; `/` when empty.
    pub path: String,
}

/// Takes `http://HOST[:PORT][/PATH]` apart. The scheme is matched without
/// case (RFC 3986); anything but `http` is refused, as are an empty host
/// and a port that is not a number from 1 to 65535.
pub fn parse(uri: &str) -> Result<Uri, String> {
    let scheme_end = uri.find("://").ok_or_else(|| format!("not an absolute URI: {uri}"))?;
    if !uri[..scheme_end].eq_ignore_ascii_case("http") {
        return Err(format!("not an http URI: {uri}"));
    }
    let rest = &uri[scheme_end + 3..];
    // The authority ends at the first `/` (or `?`, a query on the root).
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => {
            let port: u16 = port.parse().map_err(|_| format!("bad port in {uri}"))?;
            if port == 0 {
                return Err(format!("bad port in {uri}"));
            }
            (host, port)
        }
        None => (authority, 80),
    };
    if host.is_empty() {
        return Err(format!("no host in {uri}"));
    }
    let path = match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    Ok(Uri {
        host: host.to_string(),
        port,
        authority: authority.to_string(),
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_and_path() {
        let u = parse("http://127.0.0.1:8080/dir/a.html?q=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 8080, "/dir/a.html?q=1")
        );
        assert_eq!(u.authority, "127.0.0.1:8080");
    }

    #[test]
    fn defaults() {
        let u = parse("HTTP://example.com").unwrap();
        assert_eq!(
            (u.port, u.path.as_str(), u.authority.as_str()),
            (80, "/", "example.com")
        );
        assert_eq!(parse("http://h?x=1").unwrap().path, "/?x=1");
    }

    #[test]
    fn refused() {
        for bad in [
            "/index.html",
            "ftp://h/",
            "http://:80/",
            "http://h:x/",
            "http://h:0/",
            "http://h:70000/",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
