//! Durable file replacement: a file is written whole under a temporary name, fsynced and
//! renamed over its destination, so a reader (or a process started after a crash) sees the old
//! file or the new one, never a mix.
//!
//! A writer killed mid-save leaves its temporary file behind. Each temporary file is held under
//! an exclusive advisory lock (`flock` on Unix) by its writer for as long as the writer lives,
//! and the OS drops the lock when the process dies; so the next save to the same path removes
//! every temporary of that path it can lock, and leftovers never accumulate.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::checkpoint::CheckpointError;

/// Writes `bytes` to `path` through a temporary file `.{file name}.tmp-{pid}-{n}` in the same
/// directory, fsynced and renamed over `path` (and the directory fsynced, best effort); first
/// removes the temporaries of `path` that dead writers left. On error the temporary file is
/// removed and `path` is as it was.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let io_error = |source| CheckpointError::Io { path: path.to_owned(), source };
    let Some(file_name) = path.file_name() else {
        return Err(io_error(io::Error::new(io::ErrorKind::InvalidInput, "the path does not name a file")));
    };
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let prefix = temp_prefix(file_name);
    // Before creating our own: a save killed at any point then leaves at most its own file.
    remove_stale(dir, &prefix);
    let (tmp, mut file) = create_locked(dir, &prefix).map_err(io_error)?;

    // The lock is held (the file stays open) until after the rename: until then the name is a
    // live writer's and no other save may remove it.
    let written = file.write_all(bytes).and_then(|()| file.sync_all()).and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_error(e));
    }
    drop(file);
    sync_dir(dir);
    Ok(())
}

/// `.{file name}.tmp-`: the start of the names of `path`'s temporary files.
fn temp_prefix(file_name: &OsStr) -> OsString {
    let mut prefix = OsString::from(".");
    prefix.push(file_name);
    prefix.push(".tmp-");
    prefix
}

/// A new temporary file `{prefix}{pid}-{n}` in `dir`, created exclusively and locked.
///
/// Between creating the file and locking it, another save may take the lock and remove the
/// name as a dead writer's (it cannot tell the two apart); the lock is then refused or the name
/// no longer leads to this file, and a fresh name is tried.
fn create_locked(dir: &Path, prefix: &OsStr) -> io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    for _ in 0..8 {
        let mut name = prefix.to_owned();
        name.push(format!("{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
        let tmp = dir.join(name);
        let file = match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(file) => file,
            // A dead process of the same pid left this name; remove_stale will take it.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        };
        match file.try_lock() {
            Ok(()) if still_named(&file, &tmp) => return Ok((tmp, file)),
            Ok(()) | Err(TryLockError::WouldBlock) => continue,
            // No locks on this filesystem: nothing can tell a dead writer's file from a live
            // one, so no save removes any (remove_stale cannot lock them either).
            Err(TryLockError::Error(_)) => return Ok((tmp, file)),
        }
    }
    Err(io::Error::other("could not create and lock a temporary file (8 tries)"))
}

/// Whether `path` still names the open `file` (not removed, not replaced).
#[cfg(unix)]
fn still_named(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// Without inode numbers, whether `path` exists at all.
#[cfg(not(unix))]
fn still_named(_file: &File, path: &Path) -> bool {
    path.exists()
}

/// Removes the files `{prefix}*` in `dir` whose lock can be taken: their writers are gone (a
/// live writer holds its lock until its file is renamed away). Best effort: a file that cannot
/// be opened, locked or removed stays.
fn remove_stale(dir: &Path, prefix: &OsStr) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if !entry.file_name().as_encoded_bytes().starts_with(prefix.as_encoded_bytes()) {
            continue;
        }
        if let Ok(file) = File::open(&path)
            && file.try_lock().is_ok()
        {
            let _ = fs::remove_file(&path);
        }
    }
}

/// Fsyncs the directory `dir` so that a rename in it survives a crash; best effort (not every
/// filesystem supports it, and the file itself is already complete).
#[cfg(unix)]
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Directories cannot be fsynced outside Unix; the rename is as durable as the OS makes it.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) {}
