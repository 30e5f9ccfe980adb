//! The charters this node holds, and how one that arrives is taken.
//!
//! [`Charters`] keeps the protocol's [`History`] (the valid charters of the newest
//! versions, rivals included, and the one in force as a function of that set) beside the
//! store, which keeps every charter taken across restarts. The ingest workers and the
//! operator's `update_charter` both go through it, so a charter is checked against every
//! charter the node holds, not only the one in force: a node that met a rival first still
//! takes the next honest version, and never blames the peer that relays it.

use std::sync::{Arc, Mutex, MutexGuard};

use threatmesh_protocol::SignedCharter;
use threatmesh_protocol::charter::{Admission, CharterError, History, RIVAL_DEPTH};
use tracing::error;

use crate::store::{Store, StoreError};

/// The node's charters: in memory those that may still be followed by a rival, on disk
/// all it took.
#[derive(Debug)]
pub(crate) struct Charters {
    history: Mutex<History>,
    store: Store,
}

/// What became of a charter that verified, or that needed no check.
#[derive(Debug)]
pub(crate) enum Taken {
    /// New and valid: stored. With the charter now in force, if that changed.
    Added(Option<Arc<SignedCharter>>),
    /// Not kept: held already ([`Admission::Known`]), too old, its version full, or it
    /// names a charter this node lacks ([`Admission::MissingPrevious`]: the sender's
    /// charters are worth fetching).
    Passed(Admission),
    /// Valid, but the store failed to keep it (logged): our failure, not the sender's.
    NotStored(StoreError),
}

impl Charters {
    /// The history of `given` (the charter the node starts under) and the charters the
    /// store keeps of the versions around it.
    pub(crate) fn load(store: Store, given: SignedCharter) -> Result<Charters, StoreError> {
        let from = given.charter().version.saturating_sub(RIVAL_DEPTH + 2);
        let stored = store.charters_after(from)?;
        let history = History::from_trusted(stored.into_iter().chain([given]))
            .expect("built from the given charter at least");
        Ok(Charters {
            history: Mutex::new(history),
            store,
        })
    }

    /// The charter in force.
    pub(crate) fn in_force(&self) -> SignedCharter {
        self.lock().in_force().clone()
    }

    /// Takes `incoming` if it is new and valid against a charter the node holds (see
    /// [`History::admit`]): stored durably first, then kept. `Err` only when it fails
    /// verification against the charter it names: the one case its sender is to blame.
    /// Blocks on the disk: call from a blocking thread.
    pub(crate) fn take(&self, incoming: SignedCharter) -> Result<Taken, CharterError> {
        // Held across the write: charters are rare, and two rivals racing for the last
        // place of a version must not both get it.
        let mut history = self.lock();
        let admission = history.admit(&incoming)?;
        if admission != Admission::Added {
            return Ok(Taken::Passed(admission));
        }
        if let Err(error) = self.store.put_charter(&incoming) {
            error!(%error, "storing a charter failed");
            return Ok(Taken::NotStored(error));
        }
        let before = history.in_force().id();
        history.insert(incoming)?;
        let now = history.in_force();
        Ok(Taken::Added(
            (now.id() != before).then(|| Arc::new(now.clone())),
        ))
    }

    fn lock(&self) -> MutexGuard<'_, History> {
        // Every update leaves the history whole: a panic elsewhere cannot break it.
        self.history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
