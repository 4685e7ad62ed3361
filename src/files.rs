//! Reading the operator's small files (the configuration file, the TLS
//! certificate and key, the OIDC key set) inside the one loop, on SIGHUP
//! as at start-up, without ever waiting on them: a FIFO or a device at
//! such a path would block the read until someone wrote to it, and a huge
//! file would stall every client while it is read. So the file is opened
//! non-blocking, must be a regular file (a symlink to one is fine:
//! certificates usually are), and must be at most [`MAX_FILE_BYTES`].

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The largest file chatd reads in its loop. A configuration file, a PEM
/// chain or a JWKS document is a few KiB.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The bytes of `path`, which must be a regular file of at most
/// [`MAX_FILE_BYTES`]. The error says what is wrong, without the path
/// (callers name the file and what it is for).
pub fn read_small(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file (a FIFO, device or directory is refused)".into());
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "{} bytes is over the {} KiB such a file may have",
            meta.len(),
            MAX_FILE_BYTES / 1024
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // take(): a file that grows while it is read is still bounded.
    File::take(file, MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "over the {} KiB such a file may have",
            MAX_FILE_BYTES / 1024
        ));
    }
    Ok(bytes)
}

/// [`read_small`] as UTF-8 text.
pub fn read_small_text(path: &Path) -> Result<String, String> {
    String::from_utf8(read_small(path)?).map_err(|_| "not UTF-8 text".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifos_directories_and_huge_files_are_refused_without_waiting() {
        let dir = std::env::temp_dir().join(format!("chatd-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        // No writer: a blocking open would wait here for ever.
        assert!(
            read_small(&fifo)
                .unwrap_err()
                .contains("not a regular file")
        );
        assert!(read_small(&dir).unwrap_err().contains("not a regular file"));
        let big = dir.join("big");
        std::fs::write(&big, vec![b'#'; MAX_FILE_BYTES as usize + 1]).unwrap();
        assert!(read_small(&big).unwrap_err().contains("KiB"));
        let ok = dir.join("ok");
        std::fs::write(&ok, "a = 1\n").unwrap();
        assert_eq!(read_small_text(&ok).unwrap(), "a = 1\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
