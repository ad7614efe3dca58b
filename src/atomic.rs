//! Files written atomically: into a temporary file beside the target (`NAME.tmp`), flushed and
//! synced, then renamed over it. A reader (or a crash) sees the old file or the new one, never
//! a part; the temporary file is removed when writing fails, and [`remove_pending`] removes
//! the ones still being written when the process must exit at once (a second Ctrl-C).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::{Error, Result};

/// The temporary file written before the rename: `path` with `.tmp` appended.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Temporary files being written now. A file is created while this lock is held, so
/// [`remove_pending`], which keeps the lock until the process exits, never misses one.
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn pending() -> MutexGuard<'static, Vec<PathBuf>> {
    PENDING.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Removes every temporary file being written now and returns the lock, which keeps any new
/// one from being created: call it just before exiting the process from another thread (a
/// signal handler), and exit while holding what it returns.
pub fn remove_pending() -> MutexGuard<'static, Vec<PathBuf>> {
    let mut guard = pending();
    for tmp in guard.drain(..) {
        let _ = std::fs::remove_file(tmp);
    }
    guard
}

/// Writes `path` atomically with what `fill` writes.
pub fn write_with(path: &Path, fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>) -> Result<()> {
    let tmp = tmp_path(path);
    let created = {
        let mut list = pending();
        let f = File::create(&tmp);
        if f.is_ok() {
            list.push(tmp.clone());
        }
        f
    };
    let write = || -> std::io::Result<()> {
        let mut f = BufWriter::new(created?);
        fill(&mut f)?;
        let f = f.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    let result = write();
    let mut list = pending();
    list.retain(|p| p != &tmp);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    drop(list);
    result.map_err(|e| Error::Io { path: path.to_path_buf(), source: e })
}

/// Writes `bytes` to `path` atomically.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |f| f.write_all(bytes))
}
