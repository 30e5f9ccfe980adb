//! Which members to hold connections to: a bounded peer set, as a state machine.
//!
//! A federation may have a thousand members, and a node connected to all of them pays for
//! every one of those links while nothing happens. So a node holds between `low` and
//! `target` connections: below `low` it dials more members, chosen at random from the
//! addresses it knows (the charter's, its bootstrap list, what mDNS and identify taught it),
//! preferring organisations it is not yet connected to; above `target` (inbound links can
//! take it there, up to the hard connection limit) it closes the surplus, inbound links
//! first, never one younger than its hold time (a new link has its first reconciliation
//! to do, and a newcomer must get in while every node is full), and never so many
//! outbound ones that the peers it chose itself drop below half of `low` (an outsider
//! cannot push them all out by connecting). The gap between `low` and `target` is what
//! keeps this from churning: a node that lost one link to pruning is still above `low`
//! and does not dial again.
//!
//! A node that holds enough links would keep them forever, and after a network partition
//! heals both sides would stay apart: every node re-filled its set on its own side. So
//! once per rotation period (with jitter) a node dials one more member at random, and
//! pruning trims the surplus: links keep being re-drawn slowly, and two halves that can
//! reach each other again are joined within a few rotations of the whole federation.
//!
//! Gossipsub spreads entries over this set in O(log N) hops; [`PeerBook`] only decides
//! links. It takes events and the time and returns [`PeerAction`]s, so it is tested
//! without a swarm; the event loop carries the actions out.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use tokio::time::Instant;

/// A dial with no outcome after this long no longer counts as under way (or after
/// [`DIAL_EXPIRY_REDIALS`] first redial waits, if longer: a lab that stretches time
/// stretches the redial wait with it).
const DIAL_EXPIRY: Duration = Duration::from_secs(30);
const DIAL_EXPIRY_REDIALS: u32 = 30;

/// Addresses learnt from one peer (identify, mDNS): enough for its interfaces, bounded.
const ADDRESSES_PER_PEER: usize = 8;

/// What the event loop should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PeerAction {
    /// Dial this address.
    Dial(Multiaddr),
    /// Close every connection to this peer: the node holds more links than its target.
    Disconnect(PeerId),
}

/// An address to dial, and when.
#[derive(Debug, Clone)]
struct Candidate {
    /// The peer at the address, when the address names it (or a connection taught us).
    peer: Option<PeerId>,
    /// Not dialled before this.
    next: Instant,
    /// The wait after the next failed dial (doubling up to `max_redial`).
    wait: Duration,
}

/// A connected peer.
#[derive(Debug, Clone, Copy)]
struct Link {
    since: Instant,
    /// We dialled it.
    outbound: bool,
}

/// The peer set's state. See the module documentation.
#[derive(Debug)]
pub(crate) struct PeerBook {
    own: PeerId,
    target: usize,
    low: usize,
    /// Links younger than this are not pruned.
    hold: Duration,
    /// About how often one extra member is dialled while the set is full enough.
    rotation: Duration,
    /// When the next rotation is due.
    next_rotation: Option<Instant>,
    redial: Duration,
    max_redial: Duration,
    candidates: HashMap<Multiaddr, Candidate>,
    connected: HashMap<PeerId, Link>,
    /// Peers the charter admits, with their group (organisation): diversity counts groups.
    members: HashMap<PeerId, u64>,
    blocked: HashSet<PeerId>,
    /// Dials under way, by address, since when.
    dialing: HashMap<Multiaddr, Instant>,
    random: Random,
}

impl PeerBook {
    /// A book for node `own` holding `low..=target` links, pruning none younger than `hold`
    /// and dialling one more member about every `rotation`; `redial` is the first wait
    /// after a failed dial, doubling up to `max_redial`; `seed` picks the random choices.
    pub(crate) fn new(
        own: PeerId,
        target: usize,
        hold: Duration,
        rotation: Duration,
        redial: Duration,
        max_redial: Duration,
        seed: u64,
    ) -> PeerBook {
        let target = target.max(1);
        PeerBook {
            own,
            target,
            low: low_for(target),
            hold,
            rotation,
            next_rotation: None,
            redial,
            max_redial,
            candidates: HashMap::new(),
            connected: HashMap::new(),
            members: HashMap::new(),
            blocked: HashSet::new(),
            dialing: HashMap::new(),
            random: Random(seed),
        }
    }

    /// Below this many links the node dials more.
    #[cfg(test)]
    fn low(&self) -> usize {
        self.low
    }

    /// The peers the charter admits now, each with its group (the organisation's id hashed
    /// to a number). Candidates of peers no longer admitted are dropped.
    pub(crate) fn set_members(&mut self, members: HashMap<PeerId, u64>) {
        self.members = members;
        let members = &self.members;
        self.candidates.retain(|_, candidate| {
            candidate
                .peer
                .is_none_or(|peer| members.contains_key(&peer))
        });
    }

    /// An address to keep in mind (charter, bootstrap, operator). Due at once.
    pub(crate) fn add_address(&mut self, address: Multiaddr, now: Instant) {
        self.insert(address, now);
    }

    /// Addresses a connected peer says it listens on (identify) or that were seen on the
    /// local network (mDNS), kept only for members, at most [`ADDRESSES_PER_PEER`] each.
    pub(crate) fn learn_addresses(
        &mut self,
        peer: PeerId,
        addresses: impl IntoIterator<Item = Multiaddr>,
        now: Instant,
    ) {
        if peer == self.own || !self.members.contains_key(&peer) {
            return;
        }
        let mut known = self
            .candidates
            .values()
            .filter(|candidate| candidate.peer == Some(peer))
            .count();
        for address in addresses {
            if known >= ADDRESSES_PER_PEER {
                break;
            }
            if !is_dialable(&address) {
                continue;
            }
            let address = with_peer(address, peer);
            if !self.candidates.contains_key(&address) {
                self.insert(address, now);
                known += 1;
            }
        }
    }

    fn insert(&mut self, address: Multiaddr, now: Instant) {
        let peer = peer_of(&address);
        if peer == Some(self.own) {
            return;
        }
        let redial = self.redial;
        self.candidates.entry(address).or_insert(Candidate {
            peer,
            next: now,
            wait: redial,
        });
    }

    /// A peer is blocked (`true`) or no longer (`false`); an unblocked peer is dialled again
    /// without waiting for its backoff.
    pub(crate) fn set_blocked(&mut self, peer: PeerId, blocked: bool, now: Instant) {
        if blocked {
            self.blocked.insert(peer);
        } else if self.blocked.remove(&peer) {
            let redial = self.redial;
            for candidate in self.candidates.values_mut() {
                if candidate.peer == Some(peer) {
                    candidate.next = now;
                    candidate.wait = redial;
                }
            }
        }
    }

    /// A first connection to `peer` was established; `dialled` is the address we dialled,
    /// if we did.
    pub(crate) fn connected(&mut self, peer: PeerId, dialled: Option<&Multiaddr>, now: Instant) {
        self.connected.entry(peer).or_insert(Link {
            since: now,
            outbound: dialled.is_some(),
        });
        if let Some(address) = dialled {
            let bare = without_peer(address);
            let redial = self.redial;
            for (known, candidate) in &mut self.candidates {
                if known == address || without_peer(known) == bare {
                    candidate.wait = redial;
                    candidate.peer.get_or_insert(peer);
                }
            }
            self.dial_ended(address);
        }
        self.dialing
            .retain(|address, _| peer_of(address).is_none_or(|dialled| dialled != peer));
    }

    /// The last connection to `peer` closed.
    pub(crate) fn disconnected(&mut self, peer: &PeerId) {
        self.connected.remove(peer);
    }

    /// A dial of `address` reached `peer` (another connection to a peer already held, or a
    /// node other than the address named, or this node itself): the address is that peer's
    /// from now on, so it is not dialled again while the peer is connected, or ever if it
    /// is this node.
    pub(crate) fn reached(&mut self, address: &Multiaddr, peer: PeerId) {
        let bare = without_peer(address);
        for (known, candidate) in &mut self.candidates {
            if candidate.peer.is_none() && (known == address || without_peer(known) == bare) {
                candidate.peer = Some(peer);
            }
        }
        self.dial_ended(address);
    }

    /// A dial of `address` ended, in a connection or not.
    pub(crate) fn dial_ended(&mut self, address: &Multiaddr) {
        let bare = without_peer(address);
        self.dialing
            .retain(|known, _| known != address && without_peer(known) != bare);
    }

    /// How many peers are connected.
    #[cfg(test)]
    fn connected_count(&self) -> usize {
        self.connected.len()
    }

    /// What to do now: dial more members while under `low` links, prune down to `target`.
    pub(crate) fn tick(&mut self, now: Instant) -> Vec<PeerAction> {
        let expiry = DIAL_EXPIRY.max(self.redial.saturating_mul(DIAL_EXPIRY_REDIALS));
        self.dialing
            .retain(|_, since| now.duration_since(*since) < expiry);
        let mut actions = self.dials(now);
        actions.extend(self.prunes(now));
        actions
    }

    fn dials(&mut self, now: Instant) -> Vec<PeerAction> {
        let busy = self.connected.len() + self.dialing.len();
        let mut wanted = self.low.saturating_sub(busy);
        if wanted == 0 {
            // Enough links: one more now and then, so the set keeps being re-drawn. The first
            // is anywhere in the first period, so that nodes started together (a testnet,
            // a restart after an outage) spread their rotations from the start.
            let next = self.random.next();
            let first = self.rotation * spread_of(next) / 1_000;
            let due = *self.next_rotation.get_or_insert(now + first);
            if now < due || !self.dialing.is_empty() {
                return Vec::new();
            }
            self.next_rotation = Some(now + jitter(self.rotation, self.random.next()));
            wanted = 1;
        }
        // Links per group, so the choice spreads over organisations.
        let mut per_group: HashMap<u64, usize> = HashMap::new();
        for peer in self.connected.keys() {
            if let Some(group) = self.members.get(peer) {
                *per_group.entry(*group).or_default() += 1;
            }
        }
        let mut eligible: Vec<(usize, u64, Multiaddr)> = self
            .candidates
            .iter()
            .filter(|(address, candidate)| {
                candidate.next <= now
                    && !self.dialing.contains_key(*address)
                    && candidate.peer.is_none_or(|peer| {
                        peer != self.own
                            && !self.connected.contains_key(&peer)
                            && !self.blocked.contains(&peer)
                            && self.members.contains_key(&peer)
                    })
            })
            .map(|(address, candidate)| {
                let group = candidate.peer.and_then(|peer| self.members.get(&peer));
                let crowd = group.map_or(0, |group| per_group.get(group).copied().unwrap_or(0));
                (crowd, 0, address.clone())
            })
            .collect();
        for (_, order, _) in &mut eligible {
            *order = self.random.next();
        }
        eligible.sort_by_key(|(crowd, order, _)| (*crowd, *order));
        let mut actions = Vec::new();
        let mut chosen_peers = HashSet::new();
        for (_, _, address) in eligible {
            if wanted == 0 {
                break;
            }
            let peer = peer_of(&address);
            if peer.is_some_and(|peer| !chosen_peers.insert(peer)) {
                continue; // another address of a peer already being dialled
            }
            let Some(candidate) = self.candidates.get_mut(&address) else {
                continue;
            };
            candidate.next = now + candidate.wait;
            candidate.wait = (candidate.wait * 2).min(self.max_redial);
            self.dialing.insert(address.clone(), now);
            actions.push(PeerAction::Dial(address));
            wanted -= 1;
        }
        actions
    }

    fn prunes(&mut self, now: Instant) -> Vec<PeerAction> {
        let mut excess = self.connected.len().saturating_sub(self.target);
        if excess == 0 {
            return Vec::new();
        }
        let outbound = self.connected.values().filter(|link| link.outbound).count();
        let mut outbound_left = outbound;
        let keep_outbound = (self.low / 2).min(outbound);
        let mut per_group: HashMap<u64, usize> = HashMap::new();
        for peer in self.connected.keys() {
            if let Some(group) = self.members.get(peer) {
                *per_group.entry(*group).or_default() += 1;
            }
        }
        // Inbound first, then peers of crowded groups, then at random.
        let mut prunable: Vec<(bool, std::cmp::Reverse<usize>, u64, PeerId)> = self
            .connected
            .iter()
            .filter(|(_, link)| now.duration_since(link.since) >= self.hold)
            .map(|(peer, link)| {
                let crowd = self
                    .members
                    .get(peer)
                    .and_then(|group| per_group.get(group))
                    .copied()
                    .unwrap_or(0);
                (link.outbound, std::cmp::Reverse(crowd), 0, *peer)
            })
            .collect();
        for (_, _, order, _) in &mut prunable {
            *order = self.random.next();
        }
        prunable.sort_by_key(|(outbound, crowd, order, _)| (*outbound, *crowd, *order));
        let mut actions = Vec::new();
        for (is_outbound, _, _, peer) in prunable {
            if excess == 0 {
                break;
            }
            if is_outbound {
                if outbound_left <= keep_outbound {
                    continue;
                }
                outbound_left -= 1;
            }
            // Gone from the count now, not when the close is done: the next tick must not
            // prune again for a link already on its way out.
            self.connected.remove(&peer);
            actions.push(PeerAction::Disconnect(peer));
            excess -= 1;
        }
        actions
    }

    /// Candidate addresses held.
    #[cfg(test)]
    fn candidate_count(&self) -> usize {
        self.candidates.len()
    }
}

/// `period` give or take a quarter, from a random number, so that nodes started together
/// do not rotate together.
fn jitter(period: Duration, random: u64) -> Duration {
    let quarter = period / 4;
    period - quarter + quarter * 2 * spread_of(random) / 1_000
}

/// A number from 1 to 1,000 taken from `random`.
fn spread_of(random: u64) -> u32 {
    u32::try_from(random % 1_000).unwrap_or(0) + 1
}

/// The dial threshold for a target: three quarters of it, at least one.
pub(crate) fn low_for(target: usize) -> usize {
    (target * 3 / 4).max(1)
}

/// Whether a learnt address is one a member could be reached at: TCP over IP or DNS, not
/// a relay or a memory address.
fn is_dialable(address: &Multiaddr) -> bool {
    let mut parts = address.iter();
    let ip = matches!(
        parts.next(),
        Some(
            Protocol::Ip4(_)
                | Protocol::Ip6(_)
                | Protocol::Dns(_)
                | Protocol::Dns4(_)
                | Protocol::Dns6(_)
        )
    );
    ip && matches!(parts.next(), Some(Protocol::Tcp(port)) if port != 0)
}

pub(crate) fn peer_of(address: &Multiaddr) -> Option<PeerId> {
    address.iter().find_map(|protocol| match protocol {
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

pub(crate) fn without_peer(address: &Multiaddr) -> Multiaddr {
    address
        .iter()
        .filter(|protocol| !matches!(protocol, Protocol::P2p(_)))
        .collect()
}

fn with_peer(address: Multiaddr, peer: PeerId) -> Multiaddr {
    if peer_of(&address).is_some() {
        address
    } else {
        address.with(Protocol::P2p(peer))
    }
}

/// splitmix64: the book's choices need to be unpredictable to other members, not
/// cryptographic, and reproducible in tests.
#[derive(Debug)]
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::network::testing::peer;

    const HOLD: Duration = Duration::from_secs(10);
    const ROTATION: Duration = Duration::from_secs(120);

    fn address(index: u8) -> Multiaddr {
        format!(
            "/ip4/127.0.0.1/tcp/{}/p2p/{}",
            4000 + u16::from(index),
            peer(index)
        )
        .parse()
        .unwrap()
    }

    /// A book for node 0 in a federation of `members` nodes (1..=members), each its own
    /// organisation, with every address known.
    fn book(target: usize, members: u8) -> (PeerBook, Instant) {
        let now = Instant::now();
        let mut book = PeerBook::new(
            peer(0),
            target,
            HOLD,
            ROTATION,
            Duration::from_secs(1),
            Duration::from_secs(60),
            7,
        );
        book.set_members((1..=members).map(|i| (peer(i), u64::from(i))).collect());
        for i in 1..=members {
            book.add_address(address(i), now);
        }
        (book, now)
    }

    fn dials(actions: &[PeerAction]) -> Vec<Multiaddr> {
        actions
            .iter()
            .filter_map(|action| match action {
                PeerAction::Dial(address) => Some(address.clone()),
                PeerAction::Disconnect(_) => None,
            })
            .collect()
    }

    #[test]
    fn dials_up_to_low_and_no_more() {
        let (mut book, now) = book(16, 100);
        let first = dials(&book.tick(now));
        assert_eq!(first.len(), book.low());
        // Under way: nothing more until they end.
        assert!(book.tick(now).is_empty());
        for address in &first {
            book.connected(peer_of(address).unwrap(), Some(address), now);
        }
        assert!(dials(&book.tick(now)).is_empty());
        assert_eq!(book.connected_count(), 12);
    }

    #[test]
    fn a_full_set_dials_one_more_member_once_per_rotation() {
        let (mut book, start) = book(8, 40);
        for address in dials(&book.tick(start)) {
            book.connected(peer_of(&address).unwrap(), Some(&address), start);
        }
        // Full enough: nothing until a rotation is due, then one dial, then nothing again.
        assert!(dials(&book.tick(start + Duration::from_secs(1))).is_empty());
        let mut rotations = 0;
        let mut now = start;
        while now < start + ROTATION * 5 {
            now += Duration::from_secs(1);
            let actions = book.tick(now);
            for action in &actions {
                if let PeerAction::Disconnect(peer) = action {
                    book.disconnected(peer);
                }
            }
            let dialled = dials(&actions);
            assert!(dialled.len() <= 1);
            for address in &dialled {
                rotations += 1;
                book.connected(peer_of(address).unwrap(), Some(address), now);
            }
        }
        // The first within 120 s, then every 90 to 150 s, over 600 s; pruning keeps the set
        // at its target meanwhile.
        assert!((4..=7).contains(&rotations), "{rotations} rotations");
        assert!(book.connected_count() <= 8);
    }

    #[test]
    fn an_address_that_reached_a_held_peer_or_this_node_is_not_dialled_again() {
        let now = Instant::now();
        let mut book = PeerBook::new(
            peer(0),
            8,
            HOLD,
            ROTATION,
            Duration::ZERO,
            Duration::ZERO,
            1,
        );
        book.set_members((1..=3).map(|i| (peer(i), u64::from(i))).collect());
        let bare =
            |port: u16| -> Multiaddr { format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap() };
        book.add_address(address(1), now);
        book.add_address(bare(7001), now); // peer 1 again, without its id
        book.add_address(bare(7000), now); // this node itself
        book.connected(peer(1), Some(&address(1)), now);
        let first = dials(&book.tick(now));
        assert_eq!(first.len(), 2);
        book.reached(&bare(7001), peer(1));
        book.reached(&bare(7000), peer(0));
        assert!(dials(&book.tick(now + Duration::from_secs(1))).is_empty());
    }

    #[test]
    fn pruning_does_not_count_links_already_being_closed() {
        let (mut book, start) = book(8, 50);
        for i in 1..=12u8 {
            book.connected(peer(i), None, start);
        }
        let first = book.tick(start + HOLD);
        let pruned = first
            .iter()
            .filter(|a| matches!(a, PeerAction::Disconnect(_)))
            .count();
        assert_eq!(pruned, 4);
        // The closes have not arrived yet: nothing more to prune.
        let again = book.tick(start + HOLD + Duration::from_millis(500));
        assert!(!again.iter().any(|a| matches!(a, PeerAction::Disconnect(_))));
    }

    #[test]
    fn small_federation_connects_to_everyone() {
        let (mut book, now) = book(16, 9);
        let first = dials(&book.tick(now));
        assert_eq!(first.len(), 9);
    }

    #[test]
    fn a_lost_peer_is_replaced_and_a_failed_dial_backs_off() {
        let (mut book, now) = book(8, 50);
        let first = dials(&book.tick(now));
        for address in &first {
            book.connected(peer_of(address).unwrap(), Some(address), now);
        }
        let lost = peer_of(&first[0]).unwrap();
        book.disconnected(&lost);
        let replacement = dials(&book.tick(now));
        assert_eq!(replacement.len(), 1);
        // The replacement fails: the next dial is another member, and this address waits.
        book.dial_ended(&replacement[0]);
        let again = dials(&book.tick(now));
        assert_eq!(again.len(), 1);
        assert_ne!(again[0], replacement[0]);
    }

    #[test]
    fn surplus_inbound_links_are_pruned_to_target_once_held() {
        let (mut book, start) = book(8, 50);
        for i in 1..=6u8 {
            book.connected(peer(i), Some(&address(i)), start);
        }
        for i in 7..=14u8 {
            book.connected(peer(i), None, start);
        }
        assert_eq!(book.connected_count(), 14);
        // Young links are held.
        let early = book.tick(start + Duration::from_secs(1));
        assert!(!early.iter().any(|a| matches!(a, PeerAction::Disconnect(_))));
        let later = book.tick(start + HOLD);
        let pruned: Vec<PeerId> = later
            .iter()
            .filter_map(|action| match action {
                PeerAction::Disconnect(peer) => Some(*peer),
                PeerAction::Dial(_) => None,
            })
            .collect();
        assert_eq!(pruned.len(), 6);
        // Inbound links go first.
        assert!(pruned.iter().all(|p| (7..=14u8).any(|i| peer(i) == *p)));
    }

    #[test]
    fn outbound_links_are_not_all_pushed_out_by_inbound_ones() {
        let (mut book, start) = book(8, 60);
        for i in 1..=6u8 {
            book.connected(peer(i), Some(&address(i)), start);
        }
        // An attacker's many inbound links, all younger than the outbound ones but held.
        for i in 20..=50u8 {
            book.connected(peer(i), None, start + Duration::from_secs(1));
        }
        let actions = book.tick(start + HOLD * 2);
        let pruned: HashSet<PeerId> = actions
            .iter()
            .filter_map(|action| match action {
                PeerAction::Disconnect(peer) => Some(*peer),
                PeerAction::Dial(_) => None,
            })
            .collect();
        let kept_outbound = (1..=6u8).filter(|i| !pruned.contains(&peer(*i))).count();
        assert!(kept_outbound >= book.low() / 2, "kept {kept_outbound}");
        // Links being closed no longer count.
        assert_eq!(book.connected_count(), 8);
    }

    #[test]
    fn peers_the_charter_drops_or_that_are_blocked_are_not_dialled() {
        let (mut book, now) = book(16, 20);
        book.set_members((1..=10).map(|i| (peer(i), u64::from(i))).collect());
        book.set_blocked(peer(1), true, now);
        let dialled: Vec<PeerId> = dials(&book.tick(now)).iter().filter_map(peer_of).collect();
        assert_eq!(dialled.len(), 9);
        assert!(dialled.iter().all(|p| *p != peer(1)));
        assert!(dialled.iter().all(|p| (2..=10u8).any(|i| peer(i) == *p)));
    }

    #[test]
    fn dials_spread_over_organisations() {
        // 40 nodes in 4 organisations: the first dials reach every organisation.
        let now = Instant::now();
        let mut book = PeerBook::new(
            peer(0),
            8,
            HOLD,
            ROTATION,
            Duration::from_secs(1),
            Duration::from_secs(60),
            3,
        );
        book.set_members((1..=40).map(|i| (peer(i), u64::from(i % 4))).collect());
        for i in 1..=40 {
            book.add_address(address(i), now);
        }
        // Connect one at a time, as if each dial succeeded before the next tick.
        let mut groups = HashMap::<u64, usize>::new();
        for _ in 0..book.low() {
            let dialled = dials(&book.tick(now));
            let address = dialled.first().unwrap().clone();
            let chosen = peer_of(&address).unwrap();
            book.connected(chosen, Some(&address), now);
            let index = (1..=40u8).find(|i| peer(*i) == chosen).unwrap();
            *groups.entry(u64::from(index % 4)).or_default() += 1;
            // Drop the other dials of this tick so the next tick dials once.
            for other in dialled.iter().skip(1) {
                book.dial_ended(other);
            }
            book.dialing.clear();
        }
        assert_eq!(groups.len(), 4);
        assert!(groups.values().all(|count| (1..=2).contains(count)));
    }

    #[test]
    fn learnt_addresses_are_bounded_and_only_for_members() {
        let (mut book, now) = book(8, 5);
        let before = book.candidate_count();
        let many = (0..50u16).map(|port| {
            format!("/ip4/10.0.0.1/tcp/{}", 5000 + port)
                .parse::<Multiaddr>()
                .unwrap()
        });
        book.learn_addresses(peer(1), many, now);
        assert_eq!(book.candidate_count(), before + ADDRESSES_PER_PEER - 1);
        book.learn_addresses(peer(99), ["/ip4/10.0.0.2/tcp/1".parse().unwrap()], now);
        assert_eq!(book.candidate_count(), before + ADDRESSES_PER_PEER - 1);
        // A peer the charter drops takes its addresses with it.
        book.set_members((2..=5).map(|i| (peer(i), u64::from(i))).collect());
        assert_eq!(book.candidate_count(), before - 1);
    }
}
