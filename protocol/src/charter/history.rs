//! The charters a node holds, and which of them is in force, whatever order they came in.
//!
//! Two valid charters of one version (rivals) exist only if a steward signed both: a
//! compromised steward with enough others, or a quorum that signed two proposals. Nodes
//! then see the rivals and the versions after them in different orders, and each must end
//! on the same charter. So a node keeps every valid charter of its newest versions, not
//! just the one in force: a charter is taken if it is valid against *any* held charter of
//! the version before it (the one it names), and the charter in force is a function of the
//! set held alone: the highest version, then the smallest id
//! ([`SignedCharter::supersedes`]). A charter naming a previous version the node does not
//! hold is not misbehaviour of whoever relayed it (it may hold a rival this node has not
//! seen): the caller fetches the sender's charters instead of blaming it.
//!
//! Bounds: rivals are taken only in the newest [`RIVAL_DEPTH`] + 1 versions, at most
//! [`MAX_RIVALS`] of each version; past that a charter is refused without blame
//! ([`Admission::TooOld`], [`Admission::Full`]). Within those bounds the outcome does not
//! depend on arrival order. A fifth rival of one version needs a quorum of stewards to
//! sign five versions, and a fork older than the version before the newest needs that
//! quorum to keep signing after the honest chain moved on: a quorum that does either
//! holds the federation anyway.

use std::collections::BTreeMap;

use super::{CharterError, SignedCharter};
use crate::crypto::Hash;

/// Most charters kept of one version: the honest one and a few rivals.
pub const MAX_RIVALS: usize = 4;

/// How many versions below the newest held still take a rival: 1, so a rival of the
/// version in force, or of the one before it (whose successor already arrived), is taken.
pub const RIVAL_DEPTH: u64 = 1;

/// What [`History::admit`] makes of a charter that verifies, or need not be verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// New, valid against a held charter of the version before it: kept.
    Added,
    /// Held already.
    Known,
    /// Names a previous charter this node does not hold (it is behind, or the sender holds
    /// a rival it has not seen): not checked; fetch the sender's charters.
    MissingPrevious,
    /// Of a version more than [`RIVAL_DEPTH`] below the newest held: not checked.
    TooOld,
    /// Valid, but its version holds [`MAX_RIVALS`] charters already.
    Full,
}

/// The valid charters of a node's newest versions.
#[derive(Debug, Clone)]
pub struct History {
    /// Never empty. By version; each version's charters in arrival order, at most
    /// [`MAX_RIVALS`]. Versions from the newest less `RIVAL_DEPTH + 1` are kept, so every
    /// version that takes rivals has the charters they follow.
    versions: BTreeMap<u64, Vec<SignedCharter>>,
}

impl History {
    /// A history of charters the node already trusts (its genesis, and charters it
    /// verified before it stored them), in any order; `None` if there are none. Only the
    /// newest versions are kept, at most [`MAX_RIVALS`] of each (the first given).
    pub fn from_trusted(charters: impl IntoIterator<Item = SignedCharter>) -> Option<History> {
        let mut versions: BTreeMap<u64, Vec<SignedCharter>> = BTreeMap::new();
        for charter in charters {
            let held = versions.entry(charter.charter().version).or_default();
            if held.len() < MAX_RIVALS && !held.iter().any(|kept| kept.id() == charter.id()) {
                held.push(charter);
            }
        }
        let mut history = History { versions };
        history.prune();
        history.versions.values().next()?;
        Some(history)
    }

    /// The charter in force: of the highest version held, the smallest id.
    pub fn in_force(&self) -> &SignedCharter {
        self.versions
            .values()
            .next_back()
            .and_then(|newest| newest.iter().min_by_key(|charter| charter.id()))
            .expect("a history is never empty: built from one charter at least, never emptied")
    }

    /// The federation's id.
    pub fn federation(&self) -> Hash {
        self.in_force().federation()
    }

    /// Every charter held, oldest version first.
    pub fn charters(&self) -> impl Iterator<Item = &SignedCharter> {
        self.versions.values().flatten()
    }

    /// What [`History::insert`] would do with `incoming`, without keeping it. `Err` only
    /// for a charter that fails verification against the held charter it names (or, for a
    /// genesis, against the federation's id): the only case its sender is to blame for.
    pub fn admit(&self, incoming: &SignedCharter) -> Result<Admission, CharterError> {
        let version = incoming.charter().version;
        if self.holds(incoming) {
            return Ok(Admission::Known);
        }
        if version.saturating_add(RIVAL_DEPTH) < self.newest() {
            return Ok(Admission::TooOld);
        }
        if version == 1 {
            incoming.verify_genesis(self.federation())?;
        } else {
            let previous = self.versions.get(&(version - 1)).and_then(|held| {
                held.iter()
                    .find(|charter| Some(charter.id()) == incoming.charter().previous)
            });
            let Some(previous) = previous else {
                return Ok(Admission::MissingPrevious);
            };
            incoming.verify_successor(previous)?;
        }
        if self
            .versions
            .get(&version)
            .is_some_and(|held| held.len() >= MAX_RIVALS)
        {
            return Ok(Admission::Full);
        }
        Ok(Admission::Added)
    }

    /// Admits `incoming` (see [`History::admit`]) and keeps it if it is
    /// [`Admission::Added`]; the charter in force may then be another.
    pub fn insert(&mut self, incoming: SignedCharter) -> Result<Admission, CharterError> {
        let admission = self.admit(&incoming)?;
        if admission == Admission::Added {
            self.versions
                .entry(incoming.charter().version)
                .or_default()
                .push(incoming);
            self.prune();
        }
        Ok(admission)
    }

    fn newest(&self) -> u64 {
        self.versions.keys().next_back().copied().unwrap_or(0)
    }

    fn holds(&self, charter: &SignedCharter) -> bool {
        self.versions
            .get(&charter.charter().version)
            .is_some_and(|held| held.iter().any(|kept| kept.id() == charter.id()))
    }

    /// Drops versions no rival can follow any more.
    fn prune(&mut self) {
        let oldest = self.newest().saturating_sub(RIVAL_DEPTH + 1);
        self.versions.retain(|version, _| *version >= oldest);
    }
}
