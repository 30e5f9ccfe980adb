//! Who may do what under a charter: node certificates issued and checked, a member's
//! feed cutoffs, and the charter's answers to "may this node publish, connect, sign
//! this entry?".

use ed25519_dalek::SigningKey;

use super::{
    CERTIFICATE_DOMAIN, Charter, FeedCutoff, Member, NodeCertificate, NotAuthorised, Roles, Status,
};
use crate::crypto::{BadSignature, PublicKey, Signature};
use crate::entry::FeedHead;
use crate::time::Timestamp;
use crate::wire;

impl NodeCertificate {
    /// The root key `org_key` certifies `node` for `[valid_from, valid_until)`.
    pub fn issue(
        org_key: &SigningKey,
        node: PublicKey,
        valid_from: Timestamp,
        valid_until: Timestamp,
    ) -> NodeCertificate {
        let org = PublicKey::of(org_key);
        let signed = certificate_bytes(node, org, valid_from, valid_until);
        NodeCertificate {
            node,
            org,
            valid_from,
            valid_until,
            signature: Signature::sign(org_key, &signed),
        }
    }

    /// Checks the root key's signature.
    pub fn verify(&self) -> Result<(), BadSignature> {
        let signed = certificate_bytes(self.node, self.org, self.valid_from, self.valid_until);
        self.org.verify(&signed, &self.signature)
    }

    /// Whether `at` falls in the validity window.
    pub fn is_valid_at(&self, at: Timestamp) -> bool {
        self.valid_from <= at && at < self.valid_until
    }
}

fn certificate_bytes(
    node: PublicKey,
    org: PublicKey,
    valid_from: Timestamp,
    valid_until: Timestamp,
) -> Vec<u8> {
    wire::encode_signed(CERTIFICATE_DOMAIN, &(node, org, valid_from, valid_until))
}

impl Member {
    /// A new, active member that may publish and read, with one node, `node`, certified by
    /// the organisation key `org` from `from` until `until`: what `threatmesh init` writes
    /// for an organisation joining a federation. No cutoffs, addresses or encryption key.
    pub fn founding(
        org: &SigningKey,
        name: impl Into<String>,
        country: impl Into<String>,
        node: PublicKey,
        from: Timestamp,
        until: Timestamp,
    ) -> Member {
        Member {
            org: PublicKey::of(org),
            name: name.into(),
            country: country.into(),
            roles: Roles {
                publish: true,
                read: true,
            },
            status: Status::Active,
            nodes: vec![NodeCertificate::issue(org, node, from, until)],
            cutoffs: Vec::new(),
            addresses: Vec::new(),
            encryption_key: None,
        }
    }

    /// The certificate of `node`, if this member certifies it.
    pub fn certificate(&self, node: &PublicKey) -> Option<&NodeCertificate> {
        self.nodes.iter().find(|cert| cert.node == *node)
    }

    /// The cutoff of `node`'s feed, if it has one.
    pub fn cutoff(&self, node: &PublicKey) -> Option<&FeedCutoff> {
        self.cutoffs.iter().find(|cutoff| cutoff.node == *node)
    }

    /// [`Charter::feed_end`] for a node this member certifies.
    pub fn feed_end(&self, node: &PublicKey) -> Option<FeedCutoff> {
        match self.cutoff(node) {
            Some(cutoff) => Some(*cutoff),
            None if self.status.out_of_standing().is_some() => Some(FeedCutoff {
                node: *node,
                last_seq: 0,
                last_id: None,
            }),
            None => None,
        }
    }
}

impl Status {
    /// `("suspended" | "revoked", since)`, or `None` when active.
    pub fn out_of_standing(&self) -> Option<(&'static str, Timestamp)> {
        match *self {
            Status::Active => None,
            Status::Suspended { since } => Some(("suspended", since)),
            Status::Revoked { since } => Some(("revoked", since)),
        }
    }
}

impl Charter {
    /// The member certifying `node`, and its certificate.
    pub fn node(&self, node: &PublicKey) -> Option<(&Member, &NodeCertificate)> {
        self.members
            .iter()
            .find_map(|member| member.certificate(node).map(|cert| (member, cert)))
    }

    /// The member with root key `org`.
    pub fn member(&self, org: &PublicKey) -> Option<&Member> {
        self.members.iter().find(|member| member.org == *org)
    }

    /// May `node` publish at time `at`? (Certified then, publish role, in good standing
    /// then.) For a concrete entry use [`Charter::authorise_entry`], which also applies
    /// feed cutoffs.
    pub fn may_publish(&self, node: &PublicKey, at: Timestamp) -> Result<&Member, NotAuthorised> {
        let member = self.certified_at(node, at)?;
        if !member.roles.publish {
            return Err(NotAuthorised::MissingRole {
                org: member.org,
                action: "publish",
            });
        }
        if let Some((state, since)) = member.status.out_of_standing()
            && at >= since
        {
            return Err(NotAuthorised::OutOfStanding {
                org: member.org,
                state,
                since,
            });
        }
        Ok(member)
    }

    /// Is `entry` (author, seq, id), created at `created`, acceptable? Its author may
    /// publish at `created`, and the entry lies within its feed's cutoff: at most the last
    /// accepted seq, and at that seq exactly the entry the cutoff names. A feed of a
    /// suspended or revoked member without a cutoff accepts nothing.
    pub fn authorise_entry(
        &self,
        entry: &FeedHead,
        created: Timestamp,
    ) -> Result<&Member, NotAuthorised> {
        let member = self.may_publish(&entry.author, created)?;
        let Some(cutoff) = member.feed_end(&entry.author) else {
            return Ok(member);
        };
        let beyond = entry.seq > cutoff.last_seq
            || (entry.seq == cutoff.last_seq && cutoff.last_id != Some(entry.id));
        if beyond {
            return Err(NotAuthorised::BeyondCutoff {
                node: entry.author,
                last_seq: cutoff.last_seq,
                seq: entry.seq,
            });
        }
        Ok(member)
    }

    /// Where `node`'s feed ends, if it does: its cutoff, or seq 0 (nothing accepted) for a
    /// node of a suspended or revoked member without one. A feed that ends is closed: what
    /// it may still add is the entries up to its end that a node has not seen yet, never a
    /// second entry for a place the node holds (see the node's ingest).
    pub fn feed_end(&self, node: &PublicKey) -> Option<FeedCutoff> {
        self.node(node)?.0.feed_end(node)
    }

    /// May `node` hold a connection at `now`? Certified now, active, with a role.
    pub fn may_connect(&self, node: &PublicKey, now: Timestamp) -> Result<&Member, NotAuthorised> {
        let member = self.certified_at(node, now)?;
        if let Some((state, since)) = member.status.out_of_standing() {
            return Err(NotAuthorised::OutOfStanding {
                org: member.org,
                state,
                since,
            });
        }
        if !member.roles.read && !member.roles.publish {
            return Err(NotAuthorised::MissingRole {
                org: member.org,
                action: "connect",
            });
        }
        Ok(member)
    }

    /// Every node that may connect at `now` (those [`Charter::may_connect`] admits), with
    /// its member, in one pass over the members: asking `may_connect` node by node searches
    /// the members once per node, which a federation of a thousand feels.
    pub fn connectable(&self, now: Timestamp) -> impl Iterator<Item = (&Member, &NodeCertificate)> {
        self.members
            .iter()
            .filter(|member| {
                member.status.out_of_standing().is_none()
                    && (member.roles.read || member.roles.publish)
            })
            .flat_map(|member| member.nodes.iter().map(move |cert| (member, cert)))
            .filter(move |(_, cert)| cert.is_valid_at(now))
    }

    /// The first time after `now` at which a node certificate's window opens or closes,
    /// that is when [`Charter::connectable`] may answer differently; `None` if never.
    pub fn next_window_change(&self, now: Timestamp) -> Option<Timestamp> {
        self.members
            .iter()
            .flat_map(|member| member.nodes.iter())
            .flat_map(|cert| [cert.valid_from, cert.valid_until])
            .filter(|at| *at > now)
            .min()
    }

    /// [`Charter::may_connect`] for a libp2p PeerId in binary form.
    pub fn may_connect_peer(
        &self,
        peer_id: &[u8],
        now: Timestamp,
    ) -> Result<&Member, NotAuthorised> {
        let node = PublicKey::from_peer_id_bytes(peer_id).ok_or(NotAuthorised::NotEd25519)?;
        self.may_connect(&node, now)
    }

    fn certified_at(&self, node: &PublicKey, at: Timestamp) -> Result<&Member, NotAuthorised> {
        let (member, cert) = self.node(node).ok_or(NotAuthorised::UnknownNode(*node))?;
        if !cert.is_valid_at(at) {
            return Err(NotAuthorised::CertificateNotValid { node: *node, at });
        }
        Ok(member)
    }
}
