//! What a submission's grade depends on, as one hash: every file of the
//! submission (path, executable bit, contents; a symlink's target; the
//! kind of anything else), the
//! spec's text, sockgrade's version and the options that change what runs.
//! A second `grade` over the same folder regrades a submission only when
//! its fingerprint changed.

use sha2::{Digest, Sha256};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The fingerprint of `dir` graded by `spec_text` with `options` (anything
/// else that changes the result, e.g. the `--only` filters), as hex.
pub fn of(dir: &Path, spec_text: &str, options: &[String]) -> std::io::Result<String> {
    hashed(dir, Some(spec_text), options)
}

/// What a build of `dir` depends on: its files and sockgrade's version
/// (which builds in its own sandbox), not the spec. A regrade after a fix
/// to the spec reuses the builds (`submission::KeptBuild`).
pub fn of_sources(dir: &Path) -> std::io::Result<String> {
    hashed(dir, None, &[])
}

fn hashed(dir: &Path, spec_text: Option<&str>, options: &[String]) -> std::io::Result<String> {
    let mut hash = Sha256::new();
    // Every part is length-prefixed, so no two inputs hash alike by
    // shifting bytes from one part to the next.
    let mut part = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    part(env!("CARGO_PKG_VERSION").as_bytes());
    match spec_text {
        Some(text) => {
            part(b"graded by");
            part(text.as_bytes());
        }
        None => part(b"built"),
    }
    for o in options {
        part(o.as_bytes());
    }
    files(dir, Path::new(""), &mut part)?;
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Walks `dir` in name order (read_dir's order is the file system's).
fn files(dir: &Path, rel: &Path, part: &mut impl FnMut(&[u8])) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let rel = rel.join(entry.file_name());
        let meta = std::fs::symlink_metadata(&path)?;
        part(rel.as_os_str().as_encoded_bytes());
        if meta.file_type().is_symlink() {
            part(b"symlink");
            part(std::fs::read_link(&path)?.as_os_str().as_encoded_bytes());
        } else if meta.is_dir() {
            part(b"dir");
            files(&path, &rel, part)?;
        } else if let Some(mut file) = crate::tree::open_regular(&path)? {
            let executable = meta.permissions().mode() & 0o111 != 0;
            part(if executable { b"exec" } else { b"file" });
            let mut contents = Vec::new();
            std::io::Read::read_to_end(&mut file, &mut contents)?;
            part(&contents);
        } else {
            // A FIFO, a socket, a device: never opened for reading (a FIFO
            // would block the class run), and never copied.
            part(b"special");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn changes_with_any_file_and_the_spec_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.c"), "int main;").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b.h"), "").unwrap();
        let first = super::of(dir.path(), "spec", &[]).unwrap();
        assert_eq!(first, super::of(dir.path(), "spec", &[]).unwrap());
        assert_ne!(first, super::of(dir.path(), "spec 2", &[]).unwrap());
        assert_ne!(first, super::of(dir.path(), "spec", &["only".into()]).unwrap());
        let sources = super::of_sources(dir.path()).unwrap();
        assert_ne!(sources, first);
        std::fs::write(dir.path().join("sub/b.h"), "x").unwrap();
        assert_ne!(first, super::of(dir.path(), "spec", &[]).unwrap());
        assert_ne!(sources, super::of_sources(dir.path()).unwrap());
    }
}
