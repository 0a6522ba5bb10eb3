//! Unnamed staging files (Linux `O_TMPFILE`): a new value is written to a file with no name, in
//! the directory it will live in, and given its name only once its bytes are durable.
//!
//! Compared with a named file in the staging directory this leaves nothing behind when the process
//! dies before the commit (except for an overwrite, whose file is briefly named in the staging
//! directory; see below) (the kernel frees an unnamed file with its last descriptor, and ext4
//! frees it on recovery after a crash), and it spares the filesystem work that every save would
//! otherwise share: one directory that all staged files are created in and renamed out of (a lock
//! every concurrent save takes), and a rename across directories (which ext4 serialises
//! filesystem-wide). The file's inode is also allocated near its final directory.
//!
//! Naming an unnamed file is `linkat` through `/proc/self/fd`, which needs no privilege (the
//! `AT_EMPTY_PATH` form does). A link never replaces an existing file, so overwrites go through a
//! named link in the staging directory and a rename (see the committer).

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Whether unnamed files can be made in `dir` and named the way [`link`] does: tried once, with a
/// file linked under `probe` and removed again. Sandboxes, security modules and some filesystems
/// refuse one step or the other; the store then stages named files.
pub(crate) fn available(dir: &Path, probe: &Path) -> bool {
    let linked = create_in(dir).and_then(|file| link(&file, probe));
    let _ = std::fs::remove_file(probe);
    if let Err(e) = &linked {
        tracing::info!(dir = ?dir, error = %e, "no unnamed staging files here; staging named files");
    }
    linked.is_ok()
}

/// A new unnamed file in `dir`, open for writing.
pub(crate) fn create_in(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        // As File::create and NodeFS create files: the umask decides.
        .mode(0o666)
        .custom_flags(libc::O_TMPFILE)
        .open(dir)
}

/// Whether `error`, from [`create_in`], means the filesystem (or kernel) has no unnamed files, as
/// opposed to a failure of this one write.
pub(crate) fn unsupported(error: &io::Error) -> bool {
    // Kernels before 3.11 read O_TMPFILE as O_DIRECTORY and answer EISDIR; filesystems without
    // support answer EOPNOTSUPP.
    matches!(
        error.raw_os_error(),
        Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
    )
}

/// Gives the unnamed `file` the name `target`. Fails with `AlreadyExists` if `target` exists.
pub(crate) fn link(file: &File, target: &Path) -> io::Result<()> {
    let source = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    let target = CString::new(target.as_os_str().as_bytes())?;
    // SAFETY: both arguments are NUL-terminated strings that live until the call returns;
    // linkat only reads them.
    let linked = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            source.as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if linked == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
