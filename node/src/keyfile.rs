//! Secret keys on disk: 64 hex digits in a file only its owner can read. Signing keys
//! (organisation root, node, steward) and organisation encryption keys (X25519, for
//! opening sealed bundles) share the format.
//!
//! Keys are written with mode 0600 and refused when group or others can read them, as
//! ssh does: a node key or an organisation root key that others can read is as good as
//! lost. Keys never appear in logs or output; only their public halves do.
//!
//! An encryption key file is a keyring: the organisation's current key on the first line,
//! then the keys it had before, one per line. Entries sealed to an earlier key keep
//! opening after a rotation, because the node tries every key of its ring. A one-line
//! file, as `init` writes, is a ring of one key. The ring is rewritten whole (a new file
//! beside it, then a rename) so a node reading it never sees half of it.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use threatmesh_protocol::crypto::hex_encode;
use threatmesh_protocol::{EncryptionSecret, PublicKey, SigningKey};

/// A key file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// Others may read it.
    #[error("key file {path} can be read by others (mode {mode:o}); run: chmod 600 {path}")]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Not 64 hex digits.
    #[error("key file {path} does not hold a key (expected 64 hex digits)")]
    NotAKey {
        /// The file.
        path: PathBuf,
    },
    /// Refusing to overwrite an existing key.
    #[error("key file {path} already exists; not overwriting a key")]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// A keyring with more keys than [`MAX_KEYRING_KEYS`].
    #[error("keyring {path} holds more than {MAX_KEYRING_KEYS} keys; remove the oldest")]
    TooManyKeys {
        /// The file.
        path: PathBuf,
    },
}

/// Most keys one encryption keyring holds: every key is tried on each sealed entry that
/// does not open with the one before, so the ring stays short (a rotation a year keeps
/// decades of history).
pub const MAX_KEYRING_KEYS: usize = 32;

/// Largest keyring file read: its keys and a line break each, with room for stray blanks.
const MAX_KEYRING_BYTES: u64 = 4096;

/// A fresh key from the operating system's random source.
pub fn generate() -> Result<SigningKey, getrandom::Error> {
    generate_secret().map(|secret| SigningKey::from_bytes(&secret))
}

/// A fresh organisation encryption key (X25519) from the operating system's random source.
pub fn generate_encryption() -> Result<EncryptionSecret, getrandom::Error> {
    generate_secret().map(EncryptionSecret::from_bytes)
}

fn generate_secret() -> Result<[u8; 32], getrandom::Error> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)?;
    Ok(secret)
}

/// Writes `key` to a new file at `path`, readable by its owner only.
pub fn write(path: &Path, key: &SigningKey) -> Result<(), KeyFileError> {
    write_secret(path, &key.to_bytes())
}

/// Writes an organisation's encryption key to a new file at `path`, readable by its owner
/// only.
pub fn write_encryption(path: &Path, key: &EncryptionSecret) -> Result<(), KeyFileError> {
    write_secret(path, &key.to_bytes())
}

fn write_secret(path: &Path, secret: &[u8; 32]) -> Result<(), KeyFileError> {
    write_private(path, format!("{}\n", hex_encode(secret)).as_bytes())
}

/// Writes `text` to a new file at `path`, readable by its owner only, and syncs it.
fn write_private(path: &Path, text: &[u8]) -> Result<(), KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            KeyFileError::Exists {
                path: path.to_path_buf(),
            }
        } else {
            io(source)
        }
    })?;
    file.write_all(text).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Reads the key at `path`, refusing a file others can read.
pub fn read(path: &Path) -> Result<SigningKey, KeyFileError> {
    read_secret(path).map(|secret| SigningKey::from_bytes(&secret))
}

/// Reads the organisation's current encryption key (the first of the keyring at `path`),
/// refusing a file others can read.
pub fn read_encryption(path: &Path) -> Result<EncryptionSecret, KeyFileError> {
    let ring = read_keyring(path)?;
    ring.into_iter()
        .next()
        .ok_or_else(|| KeyFileError::NotAKey {
            path: path.to_path_buf(),
        })
}

/// Reads every key of the encryption keyring at `path`, the current one first, refusing a
/// file others can read. At least one key; at most [`MAX_KEYRING_KEYS`].
pub fn read_keyring(path: &Path) -> Result<Vec<EncryptionSecret>, KeyFileError> {
    let text = read_private(path, MAX_KEYRING_BYTES)?;
    let not_a_key = || KeyFileError::NotAKey {
        path: path.to_path_buf(),
    };
    let mut ring: Vec<EncryptionSecret> = Vec::new();
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
        let key = threatmesh_protocol::crypto::hex_decode::<32>(line).map_err(|_| not_a_key())?;
        if ring.iter().any(|held| held.to_bytes() == key) {
            continue;
        }
        if ring.len() == MAX_KEYRING_KEYS {
            return Err(KeyFileError::TooManyKeys {
                path: path.to_path_buf(),
            });
        }
        ring.push(EncryptionSecret::from_bytes(key));
    }
    if ring.is_empty() {
        return Err(not_a_key());
    }
    Ok(ring)
}

/// Puts `key` first in the keyring at `path` (creating it, mode 0600, if there is none),
/// keeping the keys already there after it. Returns the ring as written. A key already in
/// the ring moves to the front when `current`, or stays where it is otherwise.
pub fn add_to_keyring(
    path: &Path,
    key: &EncryptionSecret,
    current: bool,
) -> Result<Vec<EncryptionSecret>, KeyFileError> {
    let mut ring = match read_keyring(path) {
        Ok(ring) => ring,
        Err(KeyFileError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Vec::new()
        }
        Err(error) => return Err(error),
    };
    let held = ring
        .iter()
        .position(|held| held.to_bytes() == key.to_bytes());
    match held {
        Some(_) if !current => return Ok(ring),
        Some(index) => {
            ring.remove(index);
        }
        None => {}
    }
    if current {
        ring.insert(0, key.clone());
    } else {
        ring.push(key.clone());
    }
    if ring.len() > MAX_KEYRING_KEYS {
        return Err(KeyFileError::TooManyKeys {
            path: path.to_path_buf(),
        });
    }
    replace_keyring(path, &ring)?;
    Ok(ring)
}

/// Writes `ring` to `path` through a new file beside it and a rename, so the old ring
/// stays whole until the new one is on disk.
fn replace_keyring(path: &Path, ring: &[EncryptionSecret]) -> Result<(), KeyFileError> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".new");
    let fresh = path.with_file_name(name);
    // Left over from an interrupted rewrite: it never replaced the ring, so it goes.
    match std::fs::remove_file(&fresh) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(KeyFileError::Io {
                path: fresh,
                source,
            });
        }
    }
    let text: String = ring
        .iter()
        .map(|key| hex_encode(&key.to_bytes()) + "\n")
        .collect();
    write_private(&fresh, text.as_bytes())?;
    std::fs::rename(&fresh, path).map_err(|source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn read_secret(path: &Path) -> Result<[u8; 32], KeyFileError> {
    let text = read_private(path, MAX_KEYRING_BYTES)?;
    threatmesh_protocol::crypto::hex_decode::<32>(text.trim()).map_err(|_| KeyFileError::NotAKey {
        path: path.to_path_buf(),
    })
}

/// The text of a key file others may not read, at most `max_bytes` of it.
fn read_private(path: &Path, max_bytes: u64) -> Result<String, KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(mode) = open_to_others(path).map_err(io)? {
        return Err(KeyFileError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    let metadata = std::fs::metadata(path).map_err(io)?;
    if metadata.len() > max_bytes {
        return Err(KeyFileError::NotAKey {
            path: path.to_path_buf(),
        });
    }
    std::fs::read_to_string(path).map_err(io)
}

/// The permission bits of `path` (a file or a directory) when its group or others have
/// any access to it, `None` when only its owner has. Key files, the configuration (which
/// holds the API tokens) and the data directory (which holds opened sealed bundles) are
/// all refused on it. Always `None` off Unix, where modes do not say who may read.
pub fn open_to_others(path: &Path) -> std::io::Result<Option<u32>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        Ok((mode & 0o077 != 0).then_some(mode))
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(path).map(|_| None)
    }
}

/// The public key of the key at `path`.
pub fn public(path: &Path) -> Result<PublicKey, KeyFileError> {
    read(path).map(|key| PublicKey::of(&key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_round_trips_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let key = generate().unwrap();
        write(&path, &key).unwrap();
        assert_eq!(read(&path).unwrap().to_bytes(), key.to_bytes());
        assert!(matches!(
            write(&path, &key),
            Err(KeyFileError::Exists { .. })
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let error = read(&path).unwrap_err();
            assert!(error.to_string().contains("chmod 600"), "{error}");
        }
    }

    #[test]
    fn encryption_key_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("encryption.key");
        let key = generate_encryption().unwrap();
        write_encryption(&path, &key).unwrap();
        let read = read_encryption(&path).unwrap();
        assert_eq!(read.to_bytes(), key.to_bytes());
        assert_eq!(read.public_key(), key.public_key());
    }

    #[test]
    fn a_rotated_keyring_keeps_its_earlier_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("encryption.key");
        let first = generate_encryption().unwrap();
        write_encryption(&path, &first).unwrap();
        let second = generate_encryption().unwrap();
        add_to_keyring(&path, &second, true).unwrap();
        let third = generate_encryption().unwrap();
        add_to_keyring(&path, &third, false).unwrap();
        // Adding a key twice changes nothing.
        add_to_keyring(&path, &first, false).unwrap();
        let ring: Vec<_> = read_keyring(&path)
            .unwrap()
            .iter()
            .map(EncryptionSecret::to_bytes)
            .collect();
        assert_eq!(
            ring,
            vec![second.to_bytes(), first.to_bytes(), third.to_bytes()]
        );
        assert_eq!(
            read_encryption(&path).unwrap().to_bytes(),
            second.to_bytes()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn garbage_is_not_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.key");
        write(&path, &generate().unwrap()).unwrap();
        std::fs::write(&path, "not hex\n").unwrap();
        assert!(matches!(read(&path), Err(KeyFileError::NotAKey { .. })));
    }
}
