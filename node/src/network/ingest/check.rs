//! The checks of one entry, cheapest first (header, federation, charter authorisation,
//! clock, duplicate, full decode, signature), opening it if it is sealed for this
//! organisation, and storing it if it passes. The module above runs them on jobs.

use std::sync::Arc;

use threatmesh_protocol::bundle::Bundle;
use threatmesh_protocol::entry::{Body, EntryHeader, FeedHead, OpenError, SignedEntry};
use threatmesh_protocol::item::Item;
use threatmesh_protocol::seal::SealContext;
use threatmesh_protocol::{Hash, PublicKey, SignedCharter};
use tracing::{debug, error, warn};

use super::{Acceptance, Checked, Checker};
use crate::network::metrics::Rejection;
use crate::store::{Applied, Ingest, Reading, StoreError};

/// What a worker made of an entry's body.
pub(super) enum Opening {
    /// Nothing to open: a clear entry, or a sealed one for other organisations.
    Nothing,
    /// A sealed entry for this organisation, opened.
    Opened(Bundle),
    /// A sealed entry for this organisation that did not open with the keys held at
    /// `generation`.
    Unopened { generation: u64 },
}

impl Opening {
    pub(super) fn reading(&self) -> Reading<'_> {
        match self {
            Opening::Nothing => Reading::Entry,
            Opening::Opened(bundle) => Reading::Opened(bundle),
            Opening::Unopened { .. } => Reading::Unopened,
        }
    }
}

impl Checker {
    /// Runs every check on one entry, cheapest first, and applies it to the store if it
    /// passes (not waiting for the disk: see [`Checked::written`]). `requested` is set for
    /// sync pages: an entry of another feed, or past the range asked for, is refused.
    /// `verified` runs once the entry is known to be valid, before it is stored.
    pub(crate) fn check_entry(
        &self,
        payload: Vec<u8>,
        requested: Option<(PublicKey, u64)>,
        verified: &mut dyn FnMut(),
    ) -> Checked {
        let started = std::time::Instant::now();
        let checked = self.check_entry_inner(payload, requested, verified);
        self.metrics.ingest_latency(started.elapsed());
        match checked.acceptance {
            Acceptance::Accept => self.metrics.accepted(),
            Acceptance::Ignore => self.metrics.duplicate(),
            Acceptance::Reject(reason) => self.metrics.rejected(reason),
        }
        checked
    }

    pub(super) fn check_entry_inner(
        &self,
        payload: Vec<u8>,
        requested: Option<(PublicKey, u64)>,
        verified: &mut dyn FnMut(),
    ) -> Checked {
        let reject = |reason| Checked {
            acceptance: Acceptance::Reject(reason),
            gap: None,
            written: None,
        };
        // Nothing written, nothing to wait for: a duplicate is not acknowledged (Ignore is
        // not forwarded, and a page counts only what it stored).
        let ignore = Checked {
            acceptance: Acceptance::Ignore,
            gap: None,
            written: None,
        };
        let Ok(header) = EntryHeader::peek(&payload) else {
            return reject(Rejection::Malformed);
        };
        let charter = Arc::clone(&self.charter.borrow());
        if header.federation != charter.federation() {
            return reject(Rejection::OtherFederation);
        }
        if requested.is_some_and(|(author, to_seq)| author != header.author || header.seq > to_seq)
        {
            return reject(Rejection::Invalid);
        }
        let id = Hash::of(&payload);
        let head = FeedHead {
            author: header.author,
            seq: header.seq,
            id,
        };
        let member = match charter.charter().authorise_entry(&head, header.created) {
            Ok(member) => member,
            Err(reason) => {
                debug!(author = %header.author.fmt_short(), seq = header.seq, %reason, "entry refused");
                return reject(Rejection::NotAuthorised);
            }
        };
        // A feed the charter ended only fills places the node does not hold (see
        // `Store::apply_ended`), and that is known once stored: such an entry is forwarded
        // after, not before, so a cut-off key's contradicting entries go nowhere. The entry
        // the cutoff names is the charter's word, not the key's: taken like any other.
        let ended = member
            .feed_end(&header.author)
            .is_some_and(|end| end.last_id != Some(id));
        let org = member.org;
        let now = self.clock.clock().now();
        if header.created > now.saturating_add(self.clock_skew) {
            // Refused whoever is wrong, but first checked like any entry: a forgery is the
            // sender's fault, and only a signed entry may speak about this node's clock.
            if let Err(rejection) = open_entry(payload) {
                return reject(rejection);
            }
            self.clock.sighted(org, header.created);
            return reject(Rejection::FromTheFuture);
        }
        match self.store.contains(&id) {
            Ok(true) => return ignore,
            Ok(false) => {}
            Err(error) => {
                error!(%error, "store read failed");
                return ignore;
            }
        }
        let entry = match open_entry(payload) {
            Ok(entry) => entry,
            Err(rejection) => return reject(rejection),
        };
        if !ended {
            verified();
        }
        // Only a signed entry says how far its feed reaches.
        self.metrics.advertised(header.author, header.seq);
        let opening = self.open_sealed(&entry, &charter);
        // Added now, once checked: the time it became readable here (the checks of a large
        // entry take milliseconds, which `now`, read before them, would leave out).
        let now = self.clock.clock().now();
        let applied = if ended {
            self.store.apply_ended(&entry, org, opening.reading(), now)
        } else {
            self.store.apply(&entry, org, opening.reading(), now)
        };
        if let Ok(Applied {
            outcome: Ingest::Stored | Ingest::Gap { .. } | Ingest::Equivocation { .. },
            ..
        }) = &applied
        {
            self.count_warninglisted(&entry, &opening);
        }
        if let Opening::Unopened { generation } = opening
            && self.keyring.generation() != generation
        {
            // A key arrived while this entry was being opened, and the pass it started
            // may have gone by before the entry was marked unread.
            self.unread.pull();
        }
        if requested.is_none()
            && let Ok(Applied {
                outcome: Ingest::Stored | Ingest::Gap { .. },
                ..
            }) = &applied
        {
            // Gossip carries entries as they are published: how old this one looks says
            // something about this node's clock. (Sync pages may be old, so they do not.)
            self.clock.sighted(org, header.created);
        }
        match applied {
            Ok(Applied {
                outcome: Ingest::Stored,
                ticket,
            }) => Checked {
                acceptance: Acceptance::Accept,
                gap: None,
                written: Some(ticket),
            },
            Ok(Applied {
                outcome: Ingest::Gap { missing },
                ticket,
            }) => Checked {
                acceptance: Acceptance::Accept,
                gap: Some((header.author, missing)),
                written: Some(ticket),
            },
            Ok(Applied {
                outcome: Ingest::Equivocation { seq },
                ticket,
            }) => {
                warn!(author = %header.author.fmt_short(), seq, "equivocation: two entries for one place in a feed");
                self.metrics.equivocation();
                Checked {
                    acceptance: Acceptance::Accept,
                    gap: None,
                    written: Some(ticket),
                }
            }
            Ok(Applied {
                outcome: Ingest::Contradicts { seq },
                ..
            }) => {
                // Refused as the charter's doing, not the sender's: an honest relay may
                // have taken the entry for a place it did not hold.
                debug!(author = %header.author.fmt_short(), seq, "entry of an ended feed contradicts one held: refused");
                reject(Rejection::NotAuthorised)
            }
            Ok(Applied {
                outcome: Ingest::Duplicate,
                ..
            }) => ignore,
            // Our own failure: not the peer's fault, and not stored; sync fetches the entry
            // again once the store takes writes. A full disk or an earlier failure is
            // logged by the store once, not here for every entry.
            Err(error @ (StoreError::DiskFull { .. } | StoreError::Poisoned)) => {
                debug!(%error, "entry not stored");
                ignore
            }
            Err(error) => {
                error!(%error, "storing an entry failed");
                ignore
            }
        }
    }

    /// Counts the values of a newly stored entry that are on a warninglist: nothing is
    /// refused for it (the author may know better), but an operator sees how much of what
    /// peers send is on which list. After the entry's verdict went out, so it does not
    /// delay forwarding; a hash lookup or two per value against the store's writes.
    fn count_warninglisted(&self, entry: &SignedEntry, opening: &Opening) {
        if self.warninglists.lists().is_empty() {
            return;
        }
        let ((Opening::Opened(bundle), _) | (_, Body::Bundle(bundle))) =
            (opening, &entry.entry().body)
        else {
            return;
        };
        for item in &bundle.items {
            match item {
                Item::Indicator(indicator) => self.warninglists.count(&indicator.value),
                Item::Sighting(_) | Item::Revocation(_) => {}
            }
        }
    }

    /// The bundle of a sealed entry addressed to this node's organisation, opened with one
    /// of its encryption keys; nothing for a clear entry or one for other organisations,
    /// and `Unopened` for one this node cannot read yet (counted).
    fn open_sealed(&self, entry: &SignedEntry, charter: &SignedCharter) -> Opening {
        let Body::Sealed(sealed) = &entry.entry().body else {
            return Opening::Nothing;
        };
        let org = charter
            .charter()
            .node(&self.node)
            .map(|(member, _)| member.org);
        let Some(org) = org.filter(|org| sealed.is_for(org)) else {
            self.metrics.sealed_not_addressed();
            return Opening::Nothing;
        };
        let generation = self.keyring.generation();
        match self
            .keyring
            .open(sealed, &SealContext::of(entry.entry()), &org)
        {
            Ok(bundle) => {
                self.metrics.sealed_opened();
                Opening::Opened(bundle)
            }
            Err(reason) => {
                warn!(author = %entry.entry().author.fmt_short(), seq = entry.entry().seq, %reason,
                    "a bundle sealed to this organisation does not open; stored unread, and tried again when a key is added");
                self.metrics.sealed_open_failed();
                Opening::Unopened { generation }
            }
        }
    }
}

/// Decodes and verifies an entry from a peer; the rejection for what is wrong with it.
pub(super) fn open_entry(payload: Vec<u8>) -> Result<SignedEntry, Rejection> {
    SignedEntry::open(payload).map_err(|error| match error {
        OpenError::Entry(reason) => {
            debug!(%reason, "invalid entry");
            Rejection::Invalid
        }
        OpenError::Signature(_) => Rejection::BadSignature,
    })
}
