//! Writing rendered files: atomically (a temporary file renamed over the old one),
//! spread over the cores.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{FileError, Rendered};

pub(super) async fn write_all(mut files: Vec<Rendered>) -> Result<(), FileError> {
    // Writing is bound by file system calls; spread it over the cores.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per = files.len().div_ceil(workers).max(64);
    let mut tasks = Vec::new();
    while !files.is_empty() {
        let rest = files.split_off(per.min(files.len()));
        let chunk = std::mem::replace(&mut files, rest);
        tasks.push(tokio::task::spawn_blocking(move || write_chunk(chunk)));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

fn write_chunk(files: Vec<Rendered>) -> Result<(), FileError> {
    let mut made: BTreeSet<PathBuf> = BTreeSet::new();
    for (path, bytes) in files {
        if let Some(dir) = path.parent()
            && !made.contains(dir)
        {
            std::fs::create_dir_all(dir).map_err(|source| FileError::Io {
                path: dir.to_owned(),
                source,
            })?;
            made.insert(dir.to_owned());
        }
        replace_atomically(&path, &bytes).map_err(|source| FileError::Io { path, source })?;
    }
    Ok(())
}

/// Removes a file or folder with `remove`; one already gone is not an error.
pub(super) fn remove_if_present(
    path: &Path,
    remove: fn(&Path) -> std::io::Result<()>,
) -> Result<(), FileError> {
    match remove(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(FileError::Io {
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Writes a temporary file in the same folder, then renames it over `path`.
pub fn replace_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    drop(file);
    std::fs::rename(&tmp, path)
}
