//! The state file: the rooms (name and limit, in creation order) in
//! `rooms.json` inside the state directory.
//!
//! A save writes a temporary file, fsyncs it, renames it over the old one
//! and fsyncs the directory, so a crash at any moment leaves either the old
//! or the new file, never a torn one. A load is strict: a file chatd cannot
//! parse is an error naming the file, and the file is never overwritten.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::hub::RoomInfo;

pub const STATE_FILE: &str = "rooms.json";
const TEMP_FILE: &str = "rooms.json.tmp";
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedRoom {
    pub name: String,
    pub limit: usize,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    rooms: Vec<SavedRoom>,
}

pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens the state directory, creating it (mode 0700) if missing.
    pub fn open(dir: &Path) -> Result<Store, String> {
        if !dir.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("state: create directory {}: {e}", dir.display()))?;
        }
        Ok(Store {
            dir: dir.to_path_buf(),
        })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// The saved rooms; none when there is no file yet.
    pub fn load(&self) -> Result<Vec<SavedRoom>, String> {
        let path = self.path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("state: read {}: {e}", path.display())),
        };
        let file: StateFile = serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "state: {} is not a valid state file ({e}); fix or move it away, chatd will not overwrite it",
                path.display()
            )
        })?;
        if file.version != FORMAT_VERSION {
            return Err(format!(
                "state: {} has format version {}, this chatd reads version {FORMAT_VERSION}",
                path.display(),
                file.version
            ));
        }
        Ok(file.rooms)
    }

    /// Replaces the state file atomically with `rooms`.
    pub fn save(&self, rooms: &[RoomInfo]) -> Result<(), String> {
        let file = StateFile {
            version: FORMAT_VERSION,
            rooms: rooms
                .iter()
                .map(|r| SavedRoom {
                    name: r.name.clone(),
                    limit: r.limit,
                })
                .collect(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file).expect("state serializes");
        bytes.push(b'\n');
        let tmp = self.dir.join(TEMP_FILE);
        let result = self.write_atomically(&tmp, &bytes);
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(|e| format!("state: {e}"))
    }

    /// Each step's error names the step and the file.
    fn write_atomically(&self, tmp: &Path, bytes: &[u8]) -> Result<(), String> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .open(tmp)
            .map_err(at("create", tmp))?;
        f.write_all(bytes).map_err(at("write", tmp))?;
        f.sync_all().map_err(at("fsync", tmp))?;
        drop(f);
        let path = self.path();
        fs::rename(tmp, &path).map_err(at("rename over", &path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(at("fsync directory", &self.dir))
    }
}

/// Formats an I/O error with the step and the file it concerns.
fn at<'a>(what: &'a str, path: &'a Path) -> impl Fn(io::Error) -> String + 'a {
    move |e| format!("{what} {}: {e}", path.display())
}
