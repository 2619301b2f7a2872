//! A submission's files, copied without trusting them.
//!
//! Everything under a submission was made by its student or by its
//! Makefile, and the grader copies it as root: a link is copied as a link
//! and never followed, a file is opened with `O_NOFOLLOW | O_NONBLOCK` and
//! copied only if the kernel says it is a regular file once open (a FIFO
//! would block a reader forever, a device is not the student's to hand in),
//! files are created exclusively (never written through something already
//! there), holes stay holes (a Makefile's `truncate -s 64M` costs nothing
//! per scenario), and a copy has a bound on files and on bytes.

use std::fs::File;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// At most this many entries (files, directories, links) in a copy.
pub const MOST_FILES: usize = 10_000;
/// At most this many bytes of data in a copy (holes not counted).
pub const MOST_BYTES: u64 = 256 << 20;

/// Names at the top of a scenario's copy that belong to the grader (the
/// scenario's docroot): a submission's own entry of that name is left out,
/// so the grader never writes through something the student put there.
pub const RESERVED: &[&str] = &[".sockgrade-docroot"];

/// Why a copy was refused or failed.
#[derive(Debug)]
pub enum CopyError {
    /// Over `MOST_FILES` or `MOST_BYTES`: the submission's fault, in words.
    TooBig(String),
    /// The file system failed (a full disk, say): the grader's.
    Io(io::Error),
}

impl std::fmt::Display for CopyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CopyError::TooBig(why) => f.write_str(why),
            CopyError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<io::Error> for CopyError {
    fn from(e: io::Error) -> CopyError {
        CopyError::Io(e)
    }
}

/// What a copy left out: entries that were not regular files, directories
/// or links (FIFOs, sockets, devices), by their path in the submission.
#[derive(Debug, Default)]
pub struct Copied {
    pub left_out: Vec<PathBuf>,
}

impl Copied {
    /// A line for the build output, when anything was left out.
    pub fn note(&self) -> Option<String> {
        (!self.left_out.is_empty()).then(|| {
            let names: Vec<String> = self
                .left_out
                .iter()
                .map(|p| crate::escape::quote(p.as_os_str().as_encoded_bytes(), 200))
                .collect();
            format!(
                "[sockgrade] not copied (not a regular file, directory or link): {}\n",
                names.join(", ")
            )
        })
    }
}

/// Copies the tree `from` into `to` (which must not exist yet), handing
/// every entry to `uid` when given. `skip_reserved` leaves out `RESERVED`
/// names at the top.
pub fn copy(from: &Path, to: &Path, uid: Option<u32>, skip_reserved: bool) -> Result<Copied, CopyError> {
    copy_with(from, to, uid, skip_reserved, false)
}

/// Like `copy`, for a tree of the grader's own (`from` is root's and no
/// student's program can write it): executables are shared with it, as
/// hard links, instead of copied. Only for a copy whose programs run as a
/// user of their own: the shared file stays root's, read-only to them (see
/// `sandbox::chown_tree`). A scenario's programs run their executables and
/// never write them (the kernel refuses writes to a running one), and
/// copying them was most of a short scenario's cost when they are large (a
/// reference program with its line tables is 8 MB).
pub fn copy_sharing_executables(from: &Path, to: &Path) -> Result<Copied, CopyError> {
    copy_with(from, to, None, true, true)
}

fn copy_with(
    from: &Path,
    to: &Path,
    uid: Option<u32>,
    skip_reserved: bool,
    share_executables: bool,
) -> Result<Copied, CopyError> {
    let mut copy = Copy {
        uid,
        share_executables,
        files: 0,
        bytes: 0,
        copied: Copied::default(),
        buffer: Vec::new(),
    };
    std::fs::create_dir(to)?;
    copy.dir(from, to, Path::new(""), skip_reserved)?;
    chown(to, uid)?;
    Ok(copy.copied)
}

struct Copy {
    uid: Option<u32>,
    share_executables: bool,
    files: usize,
    bytes: u64,
    copied: Copied,
    buffer: Vec<u8>,
}

impl Copy {
    fn dir(&mut self, from: &Path, to: &Path, rel: &Path, skip_reserved: bool) -> Result<(), CopyError> {
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            let name = entry.file_name();
            if skip_reserved && RESERVED.iter().any(|r| name == *r) {
                continue;
            }
            self.files += 1;
            if self.files > MOST_FILES {
                return Err(CopyError::TooBig(format!(
                    "the submission has more than {MOST_FILES} files and directories"
                )));
            }
            let (source, target, rel) = (entry.path(), to.join(&name), rel.join(&name));
            // lstat: the entry itself, never what a link points to.
            let kind = std::fs::symlink_metadata(&source)?.file_type();
            if kind.is_dir() {
                std::fs::create_dir(&target)?;
                self.dir(&source, &target, &rel, false)?;
            } else if kind.is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(&source)?, &target)?;
            } else if kind.is_file() {
                // Shared only if others may read and run it: the shared file
                // stays root's (an executable of mode 0700, as a umask of 077
                // makes them, is copied and handed over as before).
                let mode = std::fs::symlink_metadata(&source)?.mode();
                let runnable_by_others = mode & 0o005 == 0o005;
                if self.share_executables && runnable_by_others && std::fs::hard_link(&source, &target).is_ok() {
                    continue;
                }
                if !self.file(&source, &target)? {
                    self.copied.left_out.push(rel);
                    continue;
                }
            } else {
                self.copied.left_out.push(rel);
                continue;
            }
            chown(&target, self.uid)?;
        }
        Ok(())
    }

    /// Copies one regular file, its holes kept; false if, once open, it
    /// was not a regular file after all (it changed since the listing).
    fn file(&mut self, source: &Path, target: &Path) -> Result<bool, CopyError> {
        use nix::libc;
        let src = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(source)?;
        let meta = src.metadata()?;
        if !meta.file_type().is_file() {
            return Ok(false);
        }
        // Its permissions, less set-user-id, set-group-id and the write
        // bits of others.
        let dst = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(meta.mode() & 0o755)
            .open(target)?;
        let size = meta.len();
        let mut at: i64 = 0;
        while (at as u64) < size {
            // The next stretch of data; a file system without SEEK_DATA
            // (ENXIO means none is left) reads as one stretch.
            let start = match nix::unistd::lseek(&src, at, nix::unistd::Whence::SeekData) {
                Ok(start) => start,
                Err(nix::errno::Errno::ENXIO) => break,
                Err(_) => at,
            };
            let end = nix::unistd::lseek(&src, start, nix::unistd::Whence::SeekHole).unwrap_or(size as i64);
            self.bytes += (end - start) as u64;
            if self.bytes > MOST_BYTES {
                return Err(CopyError::TooBig(format!(
                    "the submission holds more than {} MiB of data",
                    MOST_BYTES >> 20
                )));
            }
            self.range(&src, &dst, start, end)?;
            at = end;
        }
        // A hole at the end.
        dst.set_len(size)?;
        // The mode asked for at creation was cut by the umask.
        std::fs::set_permissions(
            target,
            std::os::unix::fs::PermissionsExt::from_mode(meta.mode() & 0o755),
        )?;
        Ok(true)
    }

    /// Bytes `start..end` of `src` to the same place in `dst`.
    fn range(&mut self, src: &File, dst: &File, start: i64, end: i64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let (mut from, mut to) = (start, start);
        while from < end {
            let want = usize::try_from(end - from).unwrap_or(usize::MAX).min(1 << 30);
            match nix::fcntl::copy_file_range(src, Some(&mut from), dst, Some(&mut to), want) {
                Ok(0) => break,
                Ok(_) => continue,
                // Across file systems on old kernels, or where it is missing.
                Err(_) => {
                    self.buffer.resize(256 << 10, 0);
                    let n = src.read_at(&mut self.buffer[..want.min(256 << 10)], from as u64)?;
                    if n == 0 {
                        break;
                    }
                    dst.write_all_at(&self.buffer[..n], to as u64)?;
                    from += n as i64;
                    to += n as i64;
                }
            }
        }
        Ok(())
    }
}

fn chown(path: &Path, uid: Option<u32>) -> io::Result<()> {
    if let Some(uid) = uid {
        std::os::unix::fs::lchown(path, Some(uid), Some(uid))?;
    }
    Ok(())
}

/// Opens a file of a submission for reading only if it is a regular file,
/// without following a link or blocking on a FIFO; `None` for anything else.
pub fn open_regular(path: &Path) -> io::Result<Option<File>> {
    use nix::libc;
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) || e.raw_os_error() == Some(libc::ENXIO) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(file.metadata()?.file_type().is_file().then_some(file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Links are copied as links (their targets untouched), FIFOs are left
    /// out and said, a sparse file stays sparse, reserved names stay out.
    #[test]
    fn copies_without_trusting() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("from"), dir.path().join("to"));
        std::fs::create_dir_all(from.join("sub")).unwrap();
        std::fs::write(from.join("a.c"), "int main;").unwrap();
        std::fs::set_permissions(from.join("a.c"), std::fs::Permissions::from_mode(0o4777)).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", from.join("sub/link")).unwrap();
        nix::unistd::mkfifo(&from.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let sparse = File::create(from.join("sparse")).unwrap();
        sparse.set_len(64 << 20).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&sparse, b"end", (64 << 20) - 3).unwrap();
        std::fs::create_dir(from.join(".sockgrade-docroot")).unwrap();

        let copied = copy(&from, &to, None, true).unwrap();
        assert_eq!(copied.left_out, [PathBuf::from("fifo")]);
        assert!(copied.note().unwrap().contains("\"fifo\""));
        assert_eq!(
            std::fs::read_link(to.join("sub/link")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert_eq!(std::fs::read(to.join("a.c")).unwrap(), b"int main;");
        assert_eq!(std::fs::metadata(to.join("a.c")).unwrap().mode() & 0o7777, 0o755);
        let meta = std::fs::metadata(to.join("sparse")).unwrap();
        assert_eq!(meta.len(), 64 << 20);
        assert!(meta.blocks() * 512 < 1 << 20, "{} blocks", meta.blocks());
        assert!(!to.join(".sockgrade-docroot").exists());
        assert!(open_regular(&from.join("fifo")).unwrap().is_none());
        assert!(open_regular(&from.join("sub/link")).unwrap().is_none());
    }

    /// Executables others may run are shared as links; one only its owner
    /// may run (a umask of 077) and every other file are copied.
    #[test]
    fn a_scenarios_copy_shares_only_what_others_may_run() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("from"), dir.path().join("to"));
        std::fs::create_dir(&from).unwrap();
        for (name, mode) in [("server", 0o755), ("private", 0o700), ("notes.txt", 0o644)] {
            std::fs::write(from.join(name), name).unwrap();
            std::fs::set_permissions(from.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
        }
        copy_sharing_executables(&from, &to).unwrap();
        let links = |name: &str| std::fs::metadata(to.join(name)).unwrap().nlink();
        assert_eq!(links("server"), 2);
        assert_eq!(links("private"), 1);
        assert_eq!(links("notes.txt"), 1);
        assert_eq!(std::fs::read(to.join("private")).unwrap(), b"private");
    }

    #[test]
    fn a_copy_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("from");
        std::fs::create_dir(&from).unwrap();
        for i in 0..=MOST_FILES {
            std::fs::write(from.join(i.to_string()), "").unwrap();
        }
        match copy(&from, &dir.path().join("to"), None, false) {
            Err(CopyError::TooBig(why)) => assert!(why.contains("more than 10000 files"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
