//! Crash-safe file replacement.
//!
//! The new content is written to a temporary file in the destination's
//! folder, flushed, and renamed over the destination; by default (see
//! [`Durability`]) the file is fsynced before the rename and the folder after
//! it. At every instant the destination holds either the complete old file or
//! the complete new one. A failed write removes its temporary file; a process
//! killed mid-write leaves one named `.<file>.<pid>.<random>.nnb-tmp`, which
//! readers ignore and the next save to the same path removes once the
//! process that wrote it is gone (on Linux, where `/proc` tells).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::{ContainerError, Result};

/// Suffix of temporary files left by interrupted saves.
pub const TEMP_SUFFIX: &str = ".nnb-tmp";

/// How much a save guarantees once it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// The new file and its name are on the storage device (fsync of the file
    /// and its folder): the save survives a power loss. The default.
    #[default]
    Synced,
    /// No fsync: the replacement is still atomic for killed or crashed
    /// processes (the destination is the complete old or new file), but after
    /// a power loss or kernel crash the file system may hold the old file, the
    /// new one or, on some file systems, an empty one. For scratch outputs and
    /// CI pipelines; writing back 1 GiB costs about half a second here.
    Unsynced,
}

/// Writes `path` atomically with the bytes `write` produces, synced
/// ([`Durability::Synced`]).
///
/// When `write` fails, the error is returned and `path` is left as it was.
pub fn write_atomically<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> Result<()>,
{
    write_atomically_with(path, Durability::Synced, write)
}

/// Writes `bytes` to `path` atomically and durably (a whole file, such as a
/// detached signature or a weights file).
pub fn write_bytes_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically(path, |out| {
        out.write_all(bytes).map_err(|source| ContainerError::WriteFailed {
            path: path.to_owned(),
            entry: "(whole file)".into(),
            source,
        })
    })
}

/// [`write_atomically`] with the given durability.
pub fn write_atomically_with<F>(path: &Path, durability: Durability, write: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> Result<()>,
{
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| ContainerError::InvalidContent { reason: format!("`{}` is not a file path", path.display()) })?;
    remove_stale_temps(dir, &file_name.to_string_lossy());
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{}.{}.", file_name.to_string_lossy(), std::process::id()))
        .suffix(TEMP_SUFFIX)
        .tempfile_in(dir)
        .map_err(|e| ContainerError::io("create a temporary file in", dir, e))?;
    let (file, temp_path) = temp.into_parts();
    let flusher = match durability {
        Durability::Synced => file.try_clone().ok().map(WriteBehind::start),
        Durability::Unsynced => None,
    };
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let written = write(&mut out);
    drop(flusher);
    written?;
    let file = out.into_inner().map_err(|e| ContainerError::io("write", &*temp_path, e.into_error()))?;
    if durability == Durability::Synced {
        file.sync_all().map_err(|e| ContainerError::io("sync", &*temp_path, e))?;
    }
    set_permissions(&file, path);
    drop(file);
    temp_path.persist(path).map_err(|e| ContainerError::io("rename into", path, e.error))?;
    if durability == Durability::Synced {
        sync_dir(dir);
    }
    Ok(())
}

/// Writes a file's data back to the device while it is being written, so
/// that the final fsync has little left to wait for: a thread syncs the
/// file's data every [`WriteBehind::EVERY`] until dropped. A save shorter than
/// that costs nothing more; a long one overlaps producing the bytes (hashing,
/// copying) with writing them back instead of doing one after the other.
struct WriteBehind {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WriteBehind {
    const EVERY: std::time::Duration = std::time::Duration::from_millis(100);

    fn start(file: File) -> WriteBehind {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("nnb-write-behind".into())
            .spawn(move || {
                // Errors are left to the final fsync, which reports them.
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(Self::EVERY) {
                    let _ = file.sync_data();
                }
            })
            .ok();
        WriteBehind { stop: Some(stop), thread }
    }
}

impl Drop for WriteBehind {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Removes temporary files of earlier saves to `dir/file` whose process has exited.
fn remove_stale_temps(dir: &Path, file: &str) {
    let proc_root = Path::new("/proc");
    if !proc_root.join("self").exists() {
        return; // Without /proc there is no safe way to tell; leftovers are ignored.
    }
    let prefix = format!(".{file}.");
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Some(rest) = name.strip_prefix(&prefix).and_then(|r| r.strip_suffix(TEMP_SUFFIX)) else { continue };
        let Some(pid) = rest.split('.').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !proc_root.join(pid.to_string()).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Gives the new file the old file's permissions, or the usual 0644 for a new one
/// (temporary files are created 0600).
#[cfg(unix)]
fn set_permissions(file: &File, dest: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dest).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o644);
    // Best effort: a file system without permissions keeps the default.
    let _ = file.set_permissions(std::fs::Permissions::from_mode(mode));
}

#[cfg(not(unix))]
fn set_permissions(_: &File, _: &Path) {}

/// Makes the rename durable. Best effort: some file systems refuse to open
/// or sync folders, and the rename itself has already happened.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn failed_write_keeps_old_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.nnb");
        std::fs::write(&path, b"old").unwrap();
        let err = write_atomically(&path, |w| {
            w.write_all(&[7u8; 100_000]).unwrap();
            Err(ContainerError::InvalidContent { reason: "injected".into() })
        })
        .unwrap_err();
        assert!(err.to_string().contains("injected"));
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [std::ffi::OsString::from("m.nnb")]);
    }

    #[cfg(unix)]
    #[test]
    fn new_files_are_0644_and_replacements_keep_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.nnb");
        write_atomically(&path, |w| w.write_all(b"one").map_err(|e| ContainerError::io("write", &path, e))).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_atomically(&path, |w| w.write_all(b"two").map_err(|e| ContainerError::io("write", &path, e))).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
