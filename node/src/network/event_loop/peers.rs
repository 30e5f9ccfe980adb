//! Peers: discipline (strikes, bans and blocks, decided in `discipline.rs`), the allow
//! list and read roles from the charter in force, and the addresses the peer book
//! (`peer_book.rs`) may dial.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use threatmesh_protocol::{PublicKey, SignedCharter};
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::EventLoop;
use crate::network::behaviour::NON_READER_SCORE;
use crate::network::{BlockedPeer, ClientError};

impl EventLoop {
    /// Counts refusals against `peer`; past the limit it is banned for a while.
    pub(super) fn strike(&mut self, peer: PeerId, count: u32) {
        let now = Instant::now();
        if self.discipline.strike(peer, count, now) {
            warn!(%peer, "banning peer that keeps sending refused messages");
            self.swarm.behaviour_mut().banned.block_peer(peer);
            self.peer_book.set_blocked(peer, true, now);
            self.metrics.banned();
        }
    }

    /// Puts `peer` on the block list for `duration` (`None`: until unblocked), replacing
    /// any ban or earlier block; its connections close now and new ones are refused.
    pub(super) fn block(
        &mut self,
        peer: PeerId,
        duration: Option<Duration>,
    ) -> Result<(), ClientError> {
        if peer == *self.swarm.local_peer_id() {
            return Err(ClientError::Invalid("a node cannot block itself".into()));
        }
        let now = Instant::now();
        self.discipline
            .block(peer, duration, now)
            .map_err(|error| ClientError::Invalid(error.to_string()))?;
        info!(%peer, ?duration, "peer blocked by the operator");
        self.swarm.behaviour_mut().banned.block_peer(peer);
        self.peer_book.set_blocked(peer, true, now);
        Ok(())
    }

    /// Takes `peer` off the block list, whatever put it there, and redials its known
    /// addresses now rather than at the end of a backoff grown while it was blocked.
    /// Returns whether it was blocked.
    pub(super) fn unblock(&mut self, peer: PeerId) -> bool {
        let was_blocked = self.discipline.unblock(&peer);
        self.swarm.behaviour_mut().banned.unblock_peer(peer);
        if was_blocked {
            info!(%peer, "peer unblocked");
        }
        self.peer_book.set_blocked(peer, false, Instant::now());
        was_blocked
    }

    /// The block list, with the time left of each entry.
    pub(super) fn blocked_peers(&self) -> Vec<BlockedPeer> {
        self.discipline.blocked_peers(Instant::now())
    }

    /// Makes the allow list match `charter`: its certified, active nodes may connect; a
    /// node that lost that is disconnected at once.
    pub(super) fn apply_charter(&mut self, charter: &SignedCharter) {
        self.refresh_allow_list(charter);
        self.apply_read_roles();
        self.plan_addresses(charter);
        self.clock
            .retain(|org| charter.charter().member(org).is_some());
        self.admission
            .retain_authors(|author| charter.charter().node(author).is_some());
        self.sources
            .retain(|author| charter.charter().node(author).is_some());
    }

    /// The allow-list half of [`EventLoop::apply_charter`]. Certificate windows open and
    /// close with time, so the maintenance tick runs it again when the next one does (or
    /// when the clock went back): one pass over the members, not one per tick.
    pub(super) fn refresh_allow_list(&mut self, charter: &SignedCharter) {
        let now = self.clock.clock().now();
        self.allow_list_at = now;
        self.allow_list_due = charter.charter().next_window_change(now);
        let own = *self.swarm.local_peer_id();
        // Each admitted peer with its group for the peer set's diversity: its organisation.
        let members: HashMap<PeerId, u64> = charter
            .charter()
            .connectable(now)
            .filter_map(|(member, cert)| {
                let peer = PeerId::from_bytes(&cert.node.peer_id_bytes()).ok()?;
                let mut group = [0u8; 8];
                group.copy_from_slice(&member.org.0[..8]);
                Some((peer, u64::from_le_bytes(group)))
            })
            .filter(|(peer, _)| *peer != own)
            .collect();
        let allowed: HashSet<PeerId> = members.keys().copied().collect();
        let current: Vec<PeerId> = self
            .swarm
            .behaviour()
            .allowed
            .allowed_peers()
            .iter()
            .copied()
            .collect();
        for peer in current {
            if !allowed.contains(&peer) {
                info!(%peer, "no longer in the charter: disconnecting");
                self.swarm.behaviour_mut().allowed.disallow_peer(peer);
            }
        }
        // Stop dialling peers the charter no longer admits.
        self.peer_book.set_members(members);
        for peer in allowed {
            self.swarm.behaviour_mut().allowed.allow_peer(peer);
        }
    }

    /// Whether the charter in force lets `peer`'s organisation read: be sent entries.
    pub(super) fn may_read(&self, peer: &PeerId) -> bool {
        let Some(node) = PublicKey::from_peer_id_bytes(&peer.to_bytes()) else {
            return false;
        };
        self.charter
            .borrow()
            .charter()
            .node(&node)
            .is_some_and(|(member, _)| member.roles.read)
    }

    /// Tells gossipsub whether `peer` (connected) may be sent entries, from the charter in
    /// force: a peer that may not read scores [`NON_READER_SCORE`], below which gossipsub
    /// neither publishes, forwards nor gossips to it, nor takes it into the mesh. Returns
    /// whether it may read.
    pub(super) fn apply_read_role(&mut self, peer: PeerId) -> bool {
        let reads = self.may_read(&peer);
        let score = if reads { 0.0 } else { NON_READER_SCORE };
        let scored = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .set_application_score(&peer, score);
        if !scored {
            // gossipsub knows every connected peer; without a score it would send to it.
            error!(%peer, "gossipsub has no score for a connected peer");
        }
        if reads {
            self.non_readers.remove(&peer);
        } else {
            self.non_readers.insert(peer);
        }
        reads
    }

    /// [`EventLoop::apply_read_role`] for every connected peer, after a newer charter. A
    /// peer that could read and may no longer is disconnected too: gossipsub leaves a mesh
    /// peer with a low score in the mesh until its next heartbeat, and forwards to it until
    /// then. It may connect again at once, and is then sent nothing.
    pub(super) fn apply_read_roles(&mut self) {
        let own = PublicKey::from_peer_id_bytes(&self.swarm.local_peer_id().to_bytes());
        let own_reads = own.and_then(|own| {
            let charter = self.charter.borrow();
            charter
                .charter()
                .node(&own)
                .map(|(member, _)| member.roles.read)
        });
        if own_reads == Some(false) {
            info!("this node's organisation may not read: it publishes, and is sent charters only");
        }
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in connected {
            let could_read = !self.non_readers.contains(&peer);
            if !self.apply_read_role(peer) && could_read {
                info!(%peer, "its organisation may no longer read: disconnecting");
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
    }

    /// The members' bootstrap addresses, parsed when a charter is applied.
    pub(super) fn plan_addresses(&mut self, charter: &SignedCharter) {
        let addresses: Vec<Multiaddr> = charter
            .charter()
            .members
            .iter()
            .flat_map(|member| member.addresses.iter())
            .filter_map(|text| text.parse().ok())
            .collect();
        let now = Instant::now();
        for address in addresses {
            self.peer_book.add_address(address, now);
        }
    }
}
