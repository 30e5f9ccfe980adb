//! Secret keys on disk: 64 hex digits in a file only its owner can read. Signing keys
//! (organisation root, node, steward) and organisation encryption keys (X25519, for
//! opening sealed bundles) share the format.
//!
//! Keys are written with mode 0600 and refused when group or others can read them, as
//! ssh does: a node key or an organisation root key that others can read is as good as
//! lost. Keys never appear in logs or output; only their public halves do.

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
}

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
    writeln!(file, "{}", hex_encode(secret)).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Reads the key at `path`, refusing a file others can read.
pub fn read(path: &Path) -> Result<SigningKey, KeyFileError> {
    read_secret(path).map(|secret| SigningKey::from_bytes(&secret))
}

/// Reads the organisation encryption key at `path`, refusing a file others can read.
pub fn read_encryption(path: &Path) -> Result<EncryptionSecret, KeyFileError> {
    read_secret(path).map(EncryptionSecret::from_bytes)
}

fn read_secret(path: &Path) -> Result<[u8; 32], KeyFileError> {
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
    let text = std::fs::read_to_string(path).map_err(io)?;
    threatmesh_protocol::crypto::hex_decode::<32>(text.trim()).map_err(|_| KeyFileError::NotAKey {
        path: path.to_path_buf(),
    })
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
    fn garbage_is_not_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.key");
        write(&path, &generate().unwrap()).unwrap();
        std::fs::write(&path, "not hex\n").unwrap();
        assert!(matches!(read(&path), Err(KeyFileError::NotAKey { .. })));
    }
}
