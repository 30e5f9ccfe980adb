//! The charters the node keeps: every version it accepted (rivals of one version side by
//! side), and the one in force.

use threatmesh_protocol::SignedCharter;
use threatmesh_protocol::wire::{self, MAX_MESSAGE_BYTES, Message};

use super::{Store, StoreError, keys};

impl Store {
    /// Keeps a charter (its validity, and how many of a version to keep, are the caller's
    /// business), durably, beside any other of its version. Unlike entries, a charter is
    /// written even when free space is under the reserve: it is a few KiB, and a
    /// suspension or revocation must not wait for disk space.
    pub fn put_charter(&self, charter: &SignedCharter) -> Result<(), StoreError> {
        self.recover()?;
        let ticket = {
            let _writer = self.lock_writer();
            self.poison_on_error(self.db()?.insert(
                keys::charter(charter.charter().version, &charter.id()),
                charter.to_payload(),
            ))?;
            self.inner.flush.applied()
        };
        self.wait_durable(ticket)
    }

    /// The charters after `version`, oldest version first; rivals of one version by id.
    pub fn charters_after(&self, version: u64) -> Result<Vec<SignedCharter>, StoreError> {
        let start = keys::charters_from(version.saturating_add(1));
        let mut found: Vec<SignedCharter> = Vec::new();
        for row in self.db()?.range(start..) {
            let (key, payload) = row?;
            if key.first() != Some(&keys::CHARTER) {
                break;
            }
            let charter = match wire::decode(&payload, MAX_MESSAGE_BYTES) {
                Ok(Message::Charter(raw)) => SignedCharter::decode(raw)
                    .map_err(|error| StoreError::corrupt(&key, error.to_string()))?,
                Ok(other) => return Err(StoreError::corrupt(&key, format!("a {}", other.kind()))),
                Err(error) => return Err(StoreError::corrupt(&key, error.to_string())),
            };
            // A store written before rivals were kept side by side may hold a charter
            // under its version alone and again under its version and id.
            if !found.iter().any(|held| held.id() == charter.id()) {
                found.push(charter);
            }
        }
        Ok(found)
    }

    /// The charter in force among those kept: of the highest version, the smallest id
    /// (the order of `SignedCharter::supersedes`).
    pub fn latest_charter(&self) -> Result<Option<SignedCharter>, StoreError> {
        Ok(self
            .charters_after(0)?
            .into_iter()
            .reduce(|best, next| if next.supersedes(&best) { next } else { best }))
    }
}
