//! The organisation's encryption keys as the running node holds them: the current one and
//! those it had before, shared by the ingest workers, the retry of unread entries and
//! whoever adds a key.
//!
//! A sealed entry is opened with each key in turn, so an entry sealed to the key before a
//! rotation (by a member still on the older charter, or fetched late by sync) still
//! opens. Keys are only ever added while the node runs: a key taken away could not
//! un-read what it opened, and dropping one by mistake would leave later entries unread.
//! Every addition bumps a generation number, which tells a worker whose opening failed
//! whether a key arrived meanwhile.

use std::sync::{Arc, RwLock};

use threatmesh_protocol::bundle::Bundle;
use threatmesh_protocol::seal::{OpenError, SealContext, Sealed};
use threatmesh_protocol::{EncryptionSecret, PublicKey};

/// The keys, and how many times keys were added.
#[derive(Debug, Default)]
struct Ring {
    keys: Vec<Arc<EncryptionSecret>>,
    generation: u64,
}

/// The node's encryption keys; clones share them.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    ring: Arc<RwLock<Ring>>,
}

impl Keyring {
    /// A ring holding `keys` (the current first).
    pub fn new(keys: impl IntoIterator<Item = EncryptionSecret>) -> Keyring {
        let keyring = Keyring::default();
        for key in keys {
            keyring.add(key);
        }
        keyring
    }

    /// Adds `key`; false when the ring held it already.
    pub fn add(&self, key: EncryptionSecret) -> bool {
        let mut ring = self
            .ring
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        if ring
            .keys
            .iter()
            .any(|held| held.public_key() == key.public_key())
        {
            return false;
        }
        ring.keys.push(Arc::new(key));
        ring.generation += 1;
        true
    }

    /// Whether the ring holds no key.
    pub fn is_empty(&self) -> bool {
        self.read().keys.is_empty()
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.read().keys.len()
    }

    /// The public halves of its keys, in the order they were added.
    pub fn public_keys(&self) -> Vec<[u8; 32]> {
        self.read()
            .keys
            .iter()
            .map(|key| key.public_key())
            .collect()
    }

    /// Bumped by every key added.
    pub(crate) fn generation(&self) -> u64 {
        self.read().generation
    }

    /// Opens `sealed` as `org` with each key in turn: the bundle from the first that opens
    /// it, or the last key's error (`NotARecipient` does not depend on the key and is
    /// answered at once).
    pub(crate) fn open(
        &self,
        sealed: &Sealed,
        context: &SealContext,
        org: &PublicKey,
    ) -> Result<Bundle, Unopened> {
        // Cloned out, so a key being added never waits for an opening.
        let keys: Vec<Arc<EncryptionSecret>> = self.read().keys.clone();
        let mut last = Unopened::NoKey;
        for key in keys {
            match sealed.open(context, org, &key) {
                Ok(bundle) => return Ok(bundle),
                Err(error @ OpenError::NotARecipient(_)) => return Err(Unopened::Open(error)),
                Err(error) => last = Unopened::Open(error),
            }
        }
        Err(last)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Ring> {
        self.ring
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// Why a sealed entry addressed to this organisation did not open.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Unopened {
    /// The node holds no encryption key.
    #[error("the node has no encryption key (node.encryption_key_file)")]
    NoKey,
    /// No key opened it; the last one's reason.
    #[error(transparent)]
    Open(OpenError),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

    use super::*;

    #[test]
    fn a_key_is_held_once() {
        let keyring = Keyring::new([EncryptionSecret::from_bytes([1; 32])]);
        let before = keyring.generation();
        assert!(!keyring.add(EncryptionSecret::from_bytes([1; 32])));
        assert_eq!(keyring.generation(), before);
        assert!(keyring.add(EncryptionSecret::from_bytes([2; 32])));
        assert_eq!(keyring.len(), 2);
        assert!(keyring.generation() > before);
    }
}
