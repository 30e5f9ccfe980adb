//! Peer discipline: strikes against peers that send refused messages, bans once they add
//! up, and the operator's blocks. A plain state machine (no swarm, no I/O): the event loop
//! tells it what happened and carries out what it answers (refuse the peer in the swarm,
//! tell the peer book, count the ban).
//!
//! Strikes are forgotten after a quiet `ban` period, so rare faults never add up to a ban.
//! A ban lasts `ban`; an operator's block lasts as long as the operator said, and a ban
//! never replaces it.

use std::collections::HashMap;
use std::time::Duration;

use libp2p::PeerId;
use tokio::time::Instant;

use super::{BlockReason, BlockedPeer};

/// Why a peer is on the block list, and until when (`None`: until unblocked).
#[derive(Debug, Clone, Copy)]
struct Block {
    reason: BlockReason,
    until: Option<Instant>,
}

/// Strikes and the block list.
#[derive(Debug)]
pub(crate) struct Discipline {
    /// Refusals before a ban.
    rejects_before_ban: u32,
    /// How long a ban lasts, and how long strikes are remembered without a new one.
    ban: Duration,
    /// Refusals per peer, and when the last one came.
    strikes: HashMap<PeerId, (u32, Instant)>,
    /// Peers on the block list (banned for misbehaviour or blocked by the operator), with
    /// when that ends.
    blocks: HashMap<PeerId, Block>,
}

/// Why the operator's block was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BlockError {
    /// Past the clock's range.
    #[error("block too long")]
    TooLong,
}

impl Discipline {
    /// A peer is banned for `ban` after `rejects_before_ban` refusals.
    pub(crate) fn new(rejects_before_ban: u32, ban: Duration) -> Discipline {
        Discipline {
            rejects_before_ban,
            ban,
            strikes: HashMap::new(),
            blocks: HashMap::new(),
        }
    }

    /// Counts `count` refusals against `peer`; strikes older than a ban period are
    /// forgotten first. True when that bans it: it is on the block list from now on (an
    /// operator's block, if any, stays as the operator set it).
    pub(crate) fn strike(&mut self, peer: PeerId, count: u32, now: Instant) -> bool {
        let (strikes, last) = self.strikes.entry(peer).or_insert((0, now));
        if now.duration_since(*last) > self.ban {
            *strikes = 0;
        }
        *strikes = strikes.saturating_add(count);
        *last = now;
        if *strikes < self.rejects_before_ban {
            return false;
        }
        self.strikes.remove(&peer);
        self.blocks.entry(peer).or_insert(Block {
            reason: BlockReason::Misbehaviour,
            until: Some(now + self.ban),
        });
        true
    }

    /// Puts `peer` on the block list for `duration` (`None`: until unblocked), replacing
    /// any ban or earlier block.
    pub(crate) fn block(
        &mut self,
        peer: PeerId,
        duration: Option<Duration>,
        now: Instant,
    ) -> Result<(), BlockError> {
        let until = match duration {
            Some(duration) => Some(now.checked_add(duration).ok_or(BlockError::TooLong)?),
            None => None,
        };
        self.blocks.insert(
            peer,
            Block {
                reason: BlockReason::Operator,
                until,
            },
        );
        Ok(())
    }

    /// Takes `peer` off the block list, whatever put it there. Returns whether it was on it.
    pub(crate) fn unblock(&mut self, peer: &PeerId) -> bool {
        self.blocks.remove(peer).is_some()
    }

    /// The peers whose ban or block is over at `now` (still on the list: unblock each).
    pub(crate) fn expired(&self, now: Instant) -> Vec<PeerId> {
        self.blocks
            .iter()
            .filter(|(_, block)| block.until.is_some_and(|until| until <= now))
            .map(|(peer, _)| *peer)
            .collect()
    }

    /// The block list, with the time left of each entry, in a stable order.
    pub(crate) fn blocked_peers(&self, now: Instant) -> Vec<BlockedPeer> {
        let mut peers: Vec<BlockedPeer> = self
            .blocks
            .iter()
            .map(|(peer, block)| BlockedPeer {
                peer: *peer,
                reason: block.reason,
                remaining: block
                    .until
                    .map(|until| until.saturating_duration_since(now)),
            })
            .collect();
        peers.sort_by_key(|blocked| blocked.peer.to_bytes());
        peers
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

    use super::*;

    const BAN: Duration = Duration::from_secs(600);

    #[test]
    fn strikes_add_up_to_a_ban_that_ends() {
        let (mut discipline, now, peer) =
            (Discipline::new(3, BAN), Instant::now(), PeerId::random());
        assert!(!discipline.strike(peer, 1, now));
        assert!(!discipline.strike(peer, 1, now));
        assert!(discipline.strike(peer, 1, now), "the third strike bans");
        let blocked = discipline.blocked_peers(now);
        assert_eq!(blocked.len(), 1);
        assert_eq!(blocked[0].reason, BlockReason::Misbehaviour);
        assert_eq!(blocked[0].remaining, Some(BAN));
        assert!(discipline.expired(now + BAN / 2).is_empty());
        assert_eq!(discipline.expired(now + BAN), vec![peer]);
        assert!(discipline.unblock(&peer));
        assert!(!discipline.unblock(&peer), "taken off once");
    }

    #[test]
    fn strikes_are_forgotten_after_a_quiet_ban_period() {
        let (mut discipline, now, peer) =
            (Discipline::new(2, BAN), Instant::now(), PeerId::random());
        assert!(!discipline.strike(peer, 1, now));
        let later = now + BAN + Duration::from_secs(1);
        assert!(
            !discipline.strike(peer, 1, later),
            "the first was forgotten"
        );
        assert!(discipline.strike(peer, 1, later));
    }

    #[test]
    fn a_ban_does_not_replace_the_operators_block() {
        let (mut discipline, now, peer) =
            (Discipline::new(1, BAN), Instant::now(), PeerId::random());
        discipline.block(peer, None, now).unwrap();
        assert!(discipline.strike(peer, 5, now));
        let blocked = discipline.blocked_peers(now);
        assert_eq!(
            (blocked[0].reason, blocked[0].remaining),
            (BlockReason::Operator, None)
        );
        assert!(
            discipline.expired(now + BAN * 10).is_empty(),
            "until lifted"
        );
    }

    #[test]
    fn the_operators_block_replaces_a_ban_and_a_block_past_the_clock_is_refused() {
        let (mut discipline, now, peer) =
            (Discipline::new(1, BAN), Instant::now(), PeerId::random());
        assert!(discipline.strike(peer, 1, now));
        discipline
            .block(peer, Some(Duration::from_secs(5)), now)
            .unwrap();
        let blocked = discipline.blocked_peers(now);
        assert_eq!(
            (blocked[0].reason, blocked[0].remaining),
            (BlockReason::Operator, Some(Duration::from_secs(5)))
        );
        assert_eq!(
            discipline.block(peer, Some(Duration::MAX), now),
            Err(BlockError::TooLong)
        );
    }
}
