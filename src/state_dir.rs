//! What `parloir serve` keeps on disk across a restart: the doors of its
//! rooms, and the key their passwords are digested under.
//!
//! A small hospital runs the one-process default; before, a restart (an
//! update, a crash) opened every locked room and gave the moderator role
//! to whoever came back first. Kept here, in one folder (mode 0700):
//!
//! - `key`: 32 random bytes, made at the first start (mode 0600). Room
//!   passwords are kept as an HMAC under it (`privacy::password_digest`),
//!   so a digest made before a restart still matches after. A cluster uses
//!   its shared secret instead and keeps doors in its registry.
//! - `doors.json`: each room's [`DoorSettings`] (the password's digest,
//!   the lobby, and a digest of each participant's resume token with its
//!   role) under a digest of the room's name, rewritten whole when a door
//!   changes: into a new file, synced, then renamed over the old one, so a
//!   power cut leaves the old doors or the new ones, never half of each.
//!   No password, room name, participant's name or address is written.
//!
//! - `owners.json`: who owns each room (whoever created it: a digest of
//!   the key its browser keeps, `signal::owner`) and until when, under
//!   the same digest of the room's name, written the same way.
//!
//! Writes happen on a thread of their own: the registry that asks for one
//! never waits for the disk.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::worker::DoorSettings;

/// Rooms' doors by the digest of their name (`privacy::room_digest`).
pub type Doors = BTreeMap<String, DoorSettings>;

/// Rooms' owners by the digest of their name.
pub type Owners = BTreeMap<String, Owner>;

/// Who owns a room, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// The digest of the owner's key (`signal::owner::digest`).
    pub key: String,
    /// Milliseconds since the Unix epoch: a restart keeps the time left.
    pub until_ms: u64,
}

const KEY_FILE: &str = "key";
const DOORS_FILE: &str = "doors.json";
const OWNERS_FILE: &str = "owners.json";
const LOCK_FILE: &str = "lock";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state folder {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is not a state file of this version: {source} (move it aside to start with every room open)")]
    Format {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} should hold 32 bytes")]
    Key { path: PathBuf },
    #[error("state folder {path} is in use by another parloir serve (give this one --state-dir)")]
    Busy { path: PathBuf },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The files' shapes: versioned, so that a later Parloir can read them.
#[derive(Serialize, Deserialize)]
struct DoorsFile {
    v: u32,
    doors: Doors,
}

#[derive(Serialize, Deserialize)]
struct OwnersFile {
    v: u32,
    owners: Owners,
}

/// The state folder, opened.
pub struct StateDir {
    path: PathBuf,
    /// Held (`File::try_lock`, a `flock`) as long as this process keeps its doors there: two
    /// `serve` processes of one user on one host would otherwise share
    /// the default folder and each rewrite the other's doors away.
    lock: fs::File,
}

impl StateDir {
    /// Opens `path`, making it (mode 0700) if it is not there.
    pub fn open(path: &Path) -> Result<StateDir, StateError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(io_error(path))?;
        let lock_path = path.join(LOCK_FILE);
        let lock = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io_error(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(StateError::Busy {
                    path: path.to_path_buf(),
                })
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_error(&lock_path)(e)),
        }
        Ok(StateDir {
            path: path.to_path_buf(),
            lock,
        })
    }

    /// Where the state is kept by default: systemd's `$STATE_DIRECTORY`,
    /// else `$XDG_STATE_HOME/parloir`, else `~/.local/state/parloir`.
    pub fn default_path() -> Option<PathBuf> {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        if let Some(dir) = var("STATE_DIRECTORY") {
            return Some(PathBuf::from(dir));
        }
        if let Some(dir) = var("XDG_STATE_HOME") {
            return Some(PathBuf::from(dir).join("parloir"));
        }
        var("HOME").map(|home| PathBuf::from(home).join(".local/state/parloir"))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key room passwords are digested under, in hex: read, or made
    /// and written at the first start.
    pub fn password_key(&self) -> Result<String, StateError> {
        let path = self.path.join(KEY_FILE);
        let key = match fs::read(&path) {
            Ok(key) => key,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let key: [u8; 32] = rand::random();
                write_atomically(&path, &key).map_err(io_error(&path))?;
                key.to_vec()
            }
            Err(e) => return Err(io_error(&path)(e)),
        };
        if key.len() != 32 {
            return Err(StateError::Key { path });
        }
        Ok(key.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The doors kept by the last process, none if it kept none.
    pub fn doors(&self) -> Result<Doors, StateError> {
        Ok(self
            .read::<DoorsFile>(DOORS_FILE)?
            .map(|f| f.doors)
            .unwrap_or_default())
    }

    /// The rooms' owners kept by the last process.
    pub fn owners(&self) -> Result<Owners, StateError> {
        Ok(self
            .read::<OwnersFile>(OWNERS_FILE)?
            .map(|f| f.owners)
            .unwrap_or_default())
    }

    fn read<F: DeserializeOwned>(&self, name: &str) -> Result<Option<F>, StateError> {
        let path = self.path.join(name);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(&path)(e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StateError::Format { path, source })
    }

    /// Keeps the doors it is given, the newest whole, off the caller's
    /// thread.
    pub fn door_writer(&self) -> DoorWriter {
        self.writer(DOORS_FILE, |doors| {
            serde_json::to_vec(&DoorsFile { v: 1, doors })
        })
    }

    /// Keeps the owners it is given, likewise.
    pub fn owner_writer(&self) -> OwnerWriter {
        self.writer(OWNERS_FILE, |owners| {
            serde_json::to_vec(&OwnersFile { v: 1, owners })
        })
    }

    /// A thread that writes the newest value it was given into `name`,
    /// atomically; values given meanwhile are skipped for the newest.
    fn writer<T: Send + 'static>(
        &self,
        name: &'static str,
        encode: fn(T) -> serde_json::Result<Vec<u8>>,
    ) -> Writer<T> {
        let path = self.path.join(name);
        let (tx, rx) = mpsc::channel::<T>();
        // The folder stays this process's while a write may come.
        let lock = self.lock.try_clone();
        std::thread::Builder::new()
            .name(format!("parloir-{}", name.trim_end_matches(".json")))
            .spawn(move || {
                let _held = lock;
                while let Ok(mut value) = rx.recv() {
                    while let Ok(newer) = rx.try_recv() {
                        value = newer;
                    }
                    let written = encode(value)
                        .map_err(io::Error::other)
                        .and_then(|bytes| write_atomically(&path, &bytes));
                    if let Err(e) = written {
                        tracing::error!(path = %path.display(), "could not be kept: {e}");
                    }
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!("no thread to keep {name}: {e}"));
        Writer { tx }
    }
}

/// Hands values to a thread that keeps the newest on disk.
pub struct Writer<T> {
    tx: mpsc::Sender<T>,
}

impl<T> Clone for Writer<T> {
    fn clone(&self) -> Self {
        Writer {
            tx: self.tx.clone(),
        }
    }
}

impl<T> Writer<T> {
    pub fn write(&self, value: T) {
        let _ = self.tx.send(value);
    }
}

pub type DoorWriter = Writer<Doors>;
pub type OwnerWriter = Writer<Owners>;

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("new");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::ReturnKey;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "parloir-state-{name}-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn doors_and_key_come_back_after_a_restart() {
        let dir = temp_dir("restart");
        let state = StateDir::open(&dir).unwrap();
        let key = state.password_key().unwrap();
        assert_eq!(key.len(), 64);
        assert!(state.doors().unwrap().is_empty(), "nothing kept yet");
        let door = DoorSettings {
            password: Some("digest".into()),
            lobby: true,
            returning: vec![ReturnKey {
                key: "ab".repeat(16),
                moderator: true,
            }],
        };
        let doors = Doors::from([("chambre-217".to_string(), door)]);
        state.door_writer().write(doors.clone());

        // Another process, later: once this one's writer has written and
        // let the folder go.
        drop(state);
        let mut again = StateDir::open(&dir);
        for _ in 0..200 {
            if !matches!(again, Err(StateError::Busy { .. })) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            again = StateDir::open(&dir);
        }
        let again = again.unwrap();
        assert_eq!(again.password_key().unwrap(), key, "the same key");
        let mut read = Doors::new();
        for _ in 0..200 {
            read = again.doors().unwrap();
            if !read.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(read, doors);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
        assert_eq!(mode(&dir.join(DOORS_FILE)), 0o600);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn one_process_at_a_time_keeps_its_doors_in_a_folder() {
        let dir = temp_dir("busy");
        let first = StateDir::open(&dir).unwrap();
        let _writer = first.door_writer();
        assert!(matches!(StateDir::open(&dir), Err(StateError::Busy { .. })));
        drop(first);
        // Still held by the writer, for the rest of the process.
        assert!(matches!(StateDir::open(&dir), Err(StateError::Busy { .. })));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_damaged_file_is_said_not_guessed() {
        let dir = temp_dir("damaged");
        let state = StateDir::open(&dir).unwrap();
        fs::write(dir.join(DOORS_FILE), b"{\"v\":1,\"doors\":").unwrap();
        assert!(matches!(state.doors(), Err(StateError::Format { .. })));
        fs::write(dir.join(KEY_FILE), b"short").unwrap();
        assert!(matches!(state.password_key(), Err(StateError::Key { .. })));
        fs::remove_dir_all(&dir).unwrap();
    }
}
