//! Publishing this node's own entries: the policy of who may read what it publishes, and
//! the pipeline that signs, stores and gossips it.
//!
//! Restricted content (TLP:RED, TLP:AMBER+STRICT, named recipients) is sealed when it is
//! published, for the named organisations and the publisher's own, with the encryption
//! keys of the charter in force (`recipients`). Items are split into bundles that fit one
//! gossip message (smaller when sealed), and the bundles become the next entries of this
//! node's feed in `pipeline.rs`, where concurrent publishers share fsyncs and gossip goes
//! out in feed order. [`Error`] says what went wrong: the caller's input (refused), this
//! node's standing in the charter, or the node itself (store, network, a failed task).

mod pipeline;

use std::sync::Arc;

use threatmesh_protocol::bundle::{Bundle, Distribution, Tlp};
use threatmesh_protocol::charter::NotAuthorised;
use threatmesh_protocol::entry::MAX_BUNDLE_BYTES;
use threatmesh_protocol::item::Item;
use threatmesh_protocol::seal::{self, Recipient};
use threatmesh_protocol::{Hash, PublicKey, SignedCharter, SigningKey, Timestamp};

pub(crate) use self::pipeline::Publisher as Pipeline;
use crate::network::{Client, ClientError};
use crate::store::{Store, StoreError};

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Restricted content (TLP:RED, TLP:AMBER+STRICT) addressed to the whole federation:
    /// the node refuses to send it in the clear.
    #[error(
        "cannot publish: {tlp} content may not go to the whole federation, and the node \
         refuses to send it in the clear: name its recipients (distribution \
         {{\"recipients\": [organisation ids]}}) and it is sealed so only they can read it"
    )]
    InTheClear {
        /// The marking.
        tlp: Tlp,
    },
    /// A named recipient cannot be sealed for under the charter in force.
    #[error(
        "cannot publish: recipient {org} {why} in the charter in force (version {version}), \
         so a sealed bundle cannot be addressed to it"
    )]
    Recipient {
        /// The recipient organisation.
        org: PublicKey,
        /// Why it cannot be addressed.
        why: Unaddressable,
        /// The version of the charter in force.
        version: u64,
    },
    /// An item too large for one entry.
    #[error("cannot publish: {0}")]
    TooLarge(#[from] threatmesh_protocol::bundle::ItemTooLarge),
    /// A bundle could not be sealed.
    #[error("cannot publish: {0}")]
    Seal(#[from] threatmesh_protocol::seal::SealError),
    /// An entry could not be signed.
    #[error("cannot publish: {0}")]
    Sign(#[from] threatmesh_protocol::entry::SignError),
    /// This node may not publish under the current charter.
    #[error("this node may not publish: {0}")]
    NotAuthorised(#[from] NotAuthorised),
    /// The system gave no randomness to seal with.
    #[error("cannot publish: no randomness to seal with: {0}")]
    NoRandomness(getrandom::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The entries are stored but could not be gossiped (peers fetch them by sync).
    #[error(transparent)]
    Network(#[from] ClientError),
    /// A publishing task failed (it panicked: a bug, not the caller's fault).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Whether the request itself is refused (the content, its marking or its recipients),
    /// as opposed to this node's standing or a failure of the node.
    pub fn is_refused(&self) -> bool {
        matches!(
            self,
            Error::InTheClear { .. }
                | Error::Recipient { .. }
                | Error::TooLarge(_)
                | Error::Seal(_)
                | Error::Sign(_)
        )
    }
}

/// Why a named recipient cannot be sealed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unaddressable {
    /// Not a member of the federation.
    NotAMember,
    /// Suspended or revoked.
    OutOfStanding {
        /// The member's name.
        name: String,
        /// `suspended` or `revoked`.
        state: &'static str,
        /// Since when.
        since: Timestamp,
    },
    /// Its organisation may not read.
    MayNotRead {
        /// The member's name.
        name: String,
    },
    /// It has no encryption key in the charter.
    NoEncryptionKey {
        /// The member's name.
        name: String,
    },
}

impl std::fmt::Display for Unaddressable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unaddressable::NotAMember => write!(f, "is not a member"),
            Unaddressable::OutOfStanding { name, state, since } => {
                write!(f, "({name}) is {state} since {since}")
            }
            Unaddressable::MayNotRead { name } => write!(f, "({name}) may not read"),
            Unaddressable::NoEncryptionKey { name } => {
                write!(f, "({name}) has no encryption key")
            }
        }
    }
}

/// Publishes this node's entries. Cheap to clone: every clone shares one pipeline, so the
/// API, the console, imports and tests publishing at once share fsyncs and follow each
/// other in the feed. The charter in force and the gossip go through the node's
/// [`Client`].
#[derive(Debug, Clone)]
pub struct Publisher {
    pipeline: Arc<Pipeline>,
    client: Client,
}

impl Publisher {
    /// Publishes as the node with key `key` (the key its network was built with), into
    /// `store`, under the charter in force on `client`'s network, at the time it reads.
    /// Build one per node and clone it.
    pub fn new(key: SigningKey, store: Store, client: Client) -> Publisher {
        Publisher {
            pipeline: Arc::new(Pipeline::new(key, store, client.clock())),
            client,
        }
    }

    /// The node's key, the author of its feed.
    pub fn node_key(&self) -> PublicKey {
        PublicKey::of(self.pipeline.key())
    }

    /// Publishes `items`: split into entries that fit one gossip message, each signed,
    /// stored locally, then gossiped. Returns the entry ids once the entries are on disk
    /// and gossiped. A node with no peers yet still stores its entries; peers fetch them
    /// when they connect. Concurrent calls are group-committed: their entries follow each
    /// other in the feed, one call's together, and share fsyncs (see `pipeline.rs`).
    ///
    /// Restricted content is sealed: TLP:RED and TLP:AMBER+STRICT must name their
    /// recipients (`Distribution::Recipients`), and any bundle that names recipients is
    /// sealed for them and for this node's organisation, with the keys of the charter in
    /// force. A recipient that is not an active member, may not read, or has no
    /// encryption key in the charter is refused with an error naming it.
    pub async fn publish(
        &self,
        tlp: Tlp,
        distribution: Distribution,
        items: Vec<Item>,
    ) -> Result<Vec<Hash>, Error> {
        let charter = self.client.charter();
        let max_bytes = match recipients(&charter, &self.node_key(), tlp, &distribution)? {
            Some(recipients) => seal::max_bundle_bytes(recipients.len()),
            None => MAX_BUNDLE_BYTES,
        };
        let bundles = Bundle::split(tlp, distribution, items, max_bytes)?;
        self.pipeline
            .publish(charter, bundles, |payload| self.client.gossip(payload))
            .await
    }
}

/// Who a bundle with this marking and distribution is sealed for under `charter`, with
/// their encryption keys: `None` for content that goes in the clear. This node's
/// organisation comes first; every named recipient must be an active member that may read
/// and has an encryption key in the charter.
pub(crate) fn recipients(
    charter: &SignedCharter,
    node: &PublicKey,
    tlp: Tlp,
    distribution: &Distribution,
) -> Result<Option<Vec<Recipient>>, Error> {
    let named = match distribution {
        Distribution::Recipients(named) => named,
        Distribution::Federation if tlp.is_restricted() => {
            return Err(Error::InTheClear { tlp });
        }
        Distribution::Federation => return Ok(None),
    };
    let version = charter.charter().version;
    let (own, _) = charter
        .charter()
        .node(node)
        .ok_or(NotAuthorised::UnknownNode(*node))?;
    let mut orgs = vec![own.org];
    orgs.extend(named.iter().filter(|org| **org != own.org));
    orgs.into_iter()
        .map(|org| {
            let refuse = |why| Error::Recipient { org, why, version };
            let member = charter
                .charter()
                .member(&org)
                .ok_or_else(|| refuse(Unaddressable::NotAMember))?;
            let name = || member.name.clone();
            if let Some((state, since)) = member.status.out_of_standing() {
                return Err(refuse(Unaddressable::OutOfStanding {
                    name: name(),
                    state,
                    since,
                }));
            }
            if !member.roles.read {
                return Err(refuse(Unaddressable::MayNotRead { name: name() }));
            }
            let encryption_key = member
                .encryption_key
                .ok_or_else(|| refuse(Unaddressable::NoEncryptionKey { name: name() }))?;
            Ok(Recipient {
                org,
                encryption_key,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}
