//! From a request target to a file under the document root, and never to a
//! file outside it.
//!
//! The target is what the client sent after the method: `/docs/a%20b.html?x`.
//! Turning it into a file name is where web servers classically go wrong
//! ("path traversal"): `GET /../../etc/passwd`, or the same with the dots
//! percent-encoded (`/%2e%2e/`), or the slash encoded (`..%2f`). The rules
//! that keep us safe:
//!
//! 1. **Decode first, then check.** A check done on the encoded text misses
//!    `%2e%2e`; we percent-decode the whole path, then split it at `/` and look
//!    at every segment.
//! 2. **Resolve `..` ourselves, never above the root.** `/a/../b` is `/b`;
//!    `/../b` would climb out of the document root: `403 Forbidden`.
//! 3. **Ask the kernel where the file really is.** A symbolic link inside the
//!    document root may point outside it. `canonicalize` follows every link
//!    and gives the real path, which must still lie under the (canonical)
//!    document root.

use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::response::{self, Status};

/// A file found for a request: open, with its length and its real path
/// (whose extension gives the media type).
#[derive(Debug)]
pub struct Found {
    pub file: File,
    pub length: u64,
    pub path: PathBuf,
}

/// Turns a request target into a path relative to the document root, made
/// only of normal segments (no `.`, no `..`, no empty ones).
///
/// The query (`?…`) and a fragment (`#…`, which clients should not send) are
/// ignored, and so is the scheme and host of an absolute-form target. Errors: `400` for a target that is not an absolute path or has a
/// bad `%` escape, `403` for one that climbs above the root.
pub fn relative_path(target: &str) -> Result<PathBuf, Status> {
    let path = target.split(['?', '#']).next().unwrap_or("");
    // The "absolute form" `http://host/path`, which clients send to proxies,
    // must be accepted by servers too (RFC 9112, section 3.2.2): keep the path.
    let path = match path.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("http://") => {
            let after = &path[7..];
            after.find('/').map_or("/", |slash| &after[slash..])
        }
        _ => path,
    };
    if !path.starts_with('/') {
        return Err(response::BAD_REQUEST);
    }
    let decoded = percent_decode(path.as_bytes()).ok_or(response::BAD_REQUEST)?;
    // A NUL byte cannot be in a Unix file name; the C library would take it
    // as the end of the name.
    if decoded.contains(&0) {
        return Err(response::BAD_REQUEST);
    }

    // Split the *decoded* bytes, so that an encoded `%2f` separates segments
    // too and `..%2f` is seen as the `..` it is.
    let mut segments: Vec<&[u8]> = Vec::new();
    for segment in decoded.split(|&b| b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => {
                // Going up is allowed only as far as the root.
                if segments.pop().is_none() {
                    return Err(response::FORBIDDEN);
                }
            }
            name => segments.push(name),
        }
    }
    let mut relative = PathBuf::new();
    for segment in segments {
        relative.push(std::ffi::OsStr::from_bytes(segment));
    }
    Ok(relative)
}

/// Decodes `%XX` escapes into the bytes they stand for. `None` if a `%` is
/// not followed by two hexadecimal digits. (A `+` stays a `+`: it means a
/// space only in HTML form data, not in a path.)
pub fn percent_decode(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' {
            let hex = input.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Finds and opens the file that `target` names under `docroot`, which must
/// already be canonical (absolute, no links: see `fs::canonicalize`).
///
/// A directory stands for the `index.html` inside it, whether or not the
/// target ends with a slash. Errors are the status to answer with.
///
/// This does blocking file-system calls: the server runs it on tokio's
/// blocking thread pool.
pub fn resolve(docroot: &Path, target: &str) -> Result<Found, Status> {
    let relative = relative_path(target)?;
    let mut path = inside(docroot, &docroot.join(relative))?;
    if path.is_dir() {
        path = inside(docroot, &path.join("index.html"))?;
    }
    // Only regular files: opening a FIFO would block until a writer comes,
    // and a device such as /dev/zero never ends.
    let metadata = fs::metadata(&path).map_err(io_status)?;
    if !metadata.is_file() {
        return Err(response::NOT_FOUND);
    }
    let file = File::open(&path).map_err(io_status)?;
    // The length of what we opened (not of what the name meant a moment ago).
    let metadata = file.metadata().map_err(io_status)?;
    if !metadata.is_file() {
        return Err(response::NOT_FOUND);
    }
    Ok(Found {
        file,
        length: metadata.len(),
        path,
    })
}

/// The real location of `path` (all links followed), if it is under
/// `docroot`.
fn inside(docroot: &Path, path: &Path) -> Result<PathBuf, Status> {
    let real = fs::canonicalize(path).map_err(io_status)?;
    // `starts_with` compares whole components: /srv/www2 does not start
    // with /srv/www.
    if real.starts_with(docroot) {
        Ok(real)
    } else {
        Err(response::FORBIDDEN)
    }
}

/// The status that tells the client about a failed file-system call.
fn io_status(error: io::Error) -> Status {
    match error.kind() {
        io::ErrorKind::PermissionDenied => response::FORBIDDEN,
        // Missing, or a path through something that is not a directory
        // (`/file.txt/x`), or a name too long: all "there is no such file".
        _ => response::NOT_FOUND,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(percent_decode(b"/a%20b").unwrap(), b"/a b");
        assert_eq!(percent_decode(b"%2e%2E").unwrap(), b"..");
        assert_eq!(percent_decode(b"a+b").unwrap(), b"a+b");
        assert!(percent_decode(b"%").is_none());
        assert!(percent_decode(b"%2").is_none());
        assert!(percent_decode(b"%zz").is_none());
    }

    #[test]
    fn relative_paths() {
        let ok = |t: &str| relative_path(t).unwrap();
        assert_eq!(ok("/"), PathBuf::new());
        assert_eq!(ok("/a/b.html?x=/../.."), PathBuf::from("a/b.html"));
        assert_eq!(ok("/a/./b/../c"), PathBuf::from("a/c"));
        assert_eq!(ok("//a"), PathBuf::from("a"));
        assert_eq!(ok("/a%20b.txt"), PathBuf::from("a b.txt"));
        assert_eq!(ok("http://h:80/a/b?q"), PathBuf::from("a/b"));
        assert_eq!(ok("HTTP://h"), PathBuf::new());
        for bad in ["/..", "/../x", "/%2e%2e/x", "/%2E%2E%2Fx", "/a/../../x", "/..%2fx"] {
            assert_eq!(relative_path(bad), Err(response::FORBIDDEN), "{bad}");
        }
        assert_eq!(relative_path("x"), Err(response::BAD_REQUEST));
        assert_eq!(relative_path("/%00"), Err(response::BAD_REQUEST));
        assert_eq!(relative_path("/%g0"), Err(response::BAD_REQUEST));
    }
}
