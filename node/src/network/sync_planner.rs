//! Anti-entropy as a state machine: with whom to reconcile feed heads, what to ask next,
//! and what to fetch.
//!
//! Every `sync_interval` the node reconciles with a few peers (`per_round`), taken in
//! turn from those connected, and with every new peer as soon as it connects. A
//! reconciliation is a short session of `Reconcile` requests ([`threatmesh_protocol::reconcile`]):
//! one summary of everything when the two are in step, a few narrowing rounds when they are
//! not. Heads the peer holds past ours become fetches; a newer charter at the peer becomes a
//! charters request.
//!
//! A peer that answers out of turn (parts for ranges not asked, splits that do not narrow),
//! that drags a session past [`MAX_ROUNDS`], or that times out is struck and dropped from
//! the session, and the next peer in turn is asked at once, so one bad peer cannot stop a
//! node from syncing with the others. Sessions are one per connected peer at most, each
//! holding at most [`MAX_PENDING`] ranges.
//!
//! [`SyncPlanner`] takes events and returns [`SyncAction`]s; it reads no store and owns no
//! swarm. The caller hands it this node's heads when it needs them.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use libp2p::PeerId;
use threatmesh_protocol::reconcile::{self, HeadSet, KeyRange, MAX_RANGES, Part, Summary};
use threatmesh_protocol::{FeedHead, Hash};
use tokio::time::Instant;

/// Requests one session may take. Narrowing takes about log₁₆ of the feeds in rounds, and a
/// wide difference is asked about [`MAX_RANGES`] ranges a request: 1,200 feeds that all
/// moved take about 10. Far past that is a peer that does not narrow honestly.
pub(crate) const MAX_ROUNDS: u32 = 64;

/// Ranges one session may still have to ask about.
pub(crate) const MAX_PENDING: usize = 1024;

/// What the event loop should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SyncAction {
    /// Send `peer` a `Reconcile` request with these summaries.
    Ask {
        peer: PeerId,
        summaries: Vec<Summary>,
    },
    /// `peer` holds `head`, past what this node holds of that feed: fetch what is missing.
    Fetch { peer: PeerId, head: FeedHead },
    /// `peer` applies a newer charter (or a rival of ours): ask it for charters.
    FetchCharters { peer: PeerId },
    /// `peer` broke the reconciliation protocol (or stalled it): hold it against the peer.
    Strike { peer: PeerId, why: &'static str },
}

/// One reconciliation with one peer.
#[derive(Debug)]
struct Session {
    /// Ranges still to ask about.
    pending: VecDeque<KeyRange>,
    /// The summaries of the request in flight, to check its answer against.
    asked: Option<Vec<Summary>>,
    rounds: u32,
}

impl Session {
    fn new() -> Session {
        Session {
            pending: VecDeque::from([KeyRange::ALL]),
            asked: None,
            rounds: 0,
        }
    }
}

/// The planner's state. See the module documentation.
#[derive(Debug)]
pub(crate) struct SyncPlanner {
    per_round: usize,
    /// Least time between two reconciliations started because a peer's question showed a
    /// difference: two nodes that differ for good (an equivocated feed, entries past a
    /// cutoff that one holds) would otherwise start each other's sessions back to back.
    push_back_gap: Duration,
    /// When each connected peer last had such a session started.
    pushed_back: HashMap<PeerId, Instant>,
    /// Connected peers, in the order they are reconciled with.
    rotation: VecDeque<PeerId>,
    sessions: HashMap<PeerId, Session>,
}

/// The charter a node applies: version and id.
pub(crate) type CharterMark = (u64, Hash);

impl SyncPlanner {
    /// A planner reconciling with `per_round` peers each round, and reconciling back with a
    /// peer whose question showed a difference at most once per `push_back_gap`.
    pub(crate) fn new(per_round: usize, push_back_gap: Duration) -> SyncPlanner {
        SyncPlanner {
            per_round: per_round.max(1),
            push_back_gap,
            pushed_back: HashMap::new(),
            rotation: VecDeque::new(),
            sessions: HashMap::new(),
        }
    }

    /// A first connection to `peer`: reconcile with it now.
    pub(crate) fn connected(&mut self, peer: PeerId) {
        if !self.rotation.contains(&peer) {
            self.rotation.push_back(peer);
        }
        self.sessions.entry(peer).or_insert_with(Session::new);
    }

    /// The last connection to `peer` closed: its session ends.
    pub(crate) fn disconnected(&mut self, peer: &PeerId) {
        self.rotation.retain(|known| known != peer);
        self.sessions.remove(peer);
        self.pushed_back.remove(peer);
    }

    /// A round: start sessions with the next `per_round` peers in turn that have none.
    pub(crate) fn tick(&mut self) {
        self.start_next(self.per_round);
    }

    /// `peer` asked, and our answer showed a difference: reconcile with it the other way
    /// too, unless a session with it is open already or one was started this way less than
    /// the push-back gap ago. Only connected peers.
    pub(crate) fn peer_differs(&mut self, peer: PeerId, now: Instant) {
        if !self.rotation.contains(&peer) || self.sessions.contains_key(&peer) {
            return;
        }
        let gap = self.push_back_gap;
        if self
            .pushed_back
            .get(&peer)
            .is_some_and(|last| now.duration_since(*last) < gap)
        {
            return;
        }
        self.pushed_back.insert(peer, now);
        self.sessions.insert(peer, Session::new());
    }

    /// Start a session with every connected peer (an operator's "sync now").
    pub(crate) fn everyone(&mut self) {
        for peer in &self.rotation {
            self.sessions.entry(*peer).or_insert_with(Session::new);
        }
    }

    fn start_next(&mut self, mut count: usize) {
        for _ in 0..self.rotation.len() {
            if count == 0 {
                break;
            }
            let Some(peer) = self.rotation.pop_front() else {
                break;
            };
            self.rotation.push_back(peer);
            if let std::collections::hash_map::Entry::Vacant(slot) = self.sessions.entry(peer) {
                slot.insert(Session::new());
                count -= 1;
            }
        }
    }

    /// Whether some session has a request to send.
    pub(crate) fn has_requests(&self) -> bool {
        self.sessions
            .values()
            .any(|session| session.asked.is_none() && !session.pending.is_empty())
    }

    /// The requests to send now, summarised from `own` (this node's heads).
    pub(crate) fn requests(&mut self, own: &HeadSet) -> Vec<SyncAction> {
        let mut actions = Vec::new();
        for (peer, session) in &mut self.sessions {
            if session.asked.is_some() || session.pending.is_empty() {
                continue;
            }
            let take = session.pending.len().min(MAX_RANGES);
            let summaries: Vec<Summary> = session
                .pending
                .drain(..take)
                .map(|range| own.summary(range))
                .collect();
            session.rounds += 1;
            session.asked = Some(summaries.clone());
            actions.push(SyncAction::Ask {
                peer: *peer,
                summaries,
            });
        }
        actions
    }

    /// `peer` answered the request in flight with `parts`, applying charter `theirs`; `own`
    /// is this node's heads and `ours` its charter now.
    pub(crate) fn answered(
        &mut self,
        peer: PeerId,
        parts: &[Part],
        theirs: CharterMark,
        own: &HeadSet,
        ours: CharterMark,
    ) -> Vec<SyncAction> {
        let Some(session) = self.sessions.get_mut(&peer) else {
            return Vec::new(); // disconnected meanwhile
        };
        let Some(asked) = session.asked.take() else {
            return Vec::new();
        };
        let mut actions = Vec::new();
        if theirs.0 > ours.0 || (theirs.0 == ours.0 && theirs.1 != ours.1) {
            actions.push(SyncAction::FetchCharters { peer });
        }
        if reconcile::check_answer(&asked, parts).is_err() {
            return self.fail(peer, "reconcile answer does not fit the question", actions);
        }
        for part in parts {
            match part {
                Part::Heads { heads, .. } => {
                    for head in heads {
                        let held = own.get(&head.author).map_or(0, |mine| mine.seq);
                        if head.seq > held {
                            actions.push(SyncAction::Fetch { peer, head: *head });
                        }
                    }
                }
                Part::Split(summaries) => session.pending.extend(
                    summaries
                        .iter()
                        .filter(|theirs| !own.summary(theirs.range).matches(theirs))
                        .map(|theirs| theirs.range),
                ),
            }
        }
        if session.pending.len() > MAX_PENDING || session.rounds >= MAX_ROUNDS {
            if session.pending.is_empty() {
                self.sessions.remove(&peer);
                return actions;
            }
            return self.fail(peer, "reconciliation does not narrow", actions);
        }
        if session.pending.is_empty() {
            self.sessions.remove(&peer);
        }
        actions
    }

    /// The request to `peer` failed: `timed_out` (it stalled: struck, and the next peer in
    /// turn is asked at once) or otherwise (the connection went, or it refused, as busy or
    /// not speaking the protocol: the session ends, and the next round goes on in turn;
    /// asking someone else at once would let peers that refuse at once keep this node
    /// asking at network speed).
    pub(crate) fn failed(&mut self, peer: PeerId, timed_out: bool) -> Vec<SyncAction> {
        if timed_out {
            return self.fail(peer, "reconcile request timed out", Vec::new());
        }
        self.sessions.remove(&peer);
        Vec::new()
    }

    /// `peer` advertised a feed it then did not serve: strike it, and reconcile with the
    /// next peer in turn.
    pub(crate) fn did_not_serve(&mut self, peer: PeerId) -> Vec<SyncAction> {
        self.fail(peer, "advertised a feed it did not serve", Vec::new())
    }

    fn fail(
        &mut self,
        peer: PeerId,
        why: &'static str,
        mut actions: Vec<SyncAction>,
    ) -> Vec<SyncAction> {
        self.sessions.remove(&peer);
        actions.push(SyncAction::Strike { peer, why });
        // Ask someone else now; the failing peer goes to the back of the turn.
        self.rotation.retain(|known| *known != peer);
        self.start_next(1);
        self.rotation.push_back(peer);
        actions
    }

    /// Sessions open now (at most one per connected peer).
    #[cfg(test)]
    fn session_count(&self) -> usize {
        self.sessions.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use threatmesh_protocol::PublicKey;

    use super::*;
    use crate::network::testing::peer;

    fn heads(count: usize, seq: u64) -> Vec<FeedHead> {
        (0..count)
            .map(|i| {
                let mut key = [0u8; 32];
                key[0] = (i * 37 % 256) as u8;
                key[1] = (i / 256) as u8;
                FeedHead {
                    author: PublicKey(key),
                    seq,
                    id: Hash::of(&[key[0], key[1], seq as u8]),
                }
            })
            .collect()
    }

    const CHARTER: CharterMark = (1, Hash([1; 32]));
    const GAP: Duration = Duration::from_secs(10);

    fn asks(actions: &[SyncAction]) -> Vec<(PeerId, Vec<Summary>)> {
        actions
            .iter()
            .filter_map(|action| match action {
                SyncAction::Ask { peer, summaries } => Some((*peer, summaries.clone())),
                _ => None,
            })
            .collect()
    }

    /// Drives a session of `planner` against a responder holding `theirs` until it ends;
    /// returns every action.
    fn drive(planner: &mut SyncPlanner, own: &HeadSet, theirs: &HeadSet) -> Vec<SyncAction> {
        let mut all = Vec::new();
        for _ in 0..20 {
            let requests = asks(&planner.requests(own));
            if requests.is_empty() {
                return all;
            }
            for (peer, summaries) in requests {
                let parts = theirs.answer(&summaries);
                all.extend(planner.answered(peer, &parts, CHARTER, own, CHARTER));
            }
        }
        panic!("the session did not end");
    }

    #[test]
    fn a_new_peer_is_reconciled_with_at_once_and_in_step_costs_one_request() {
        let mut planner = SyncPlanner::new(2, GAP);
        planner.connected(peer(1));
        let own = HeadSet::new(heads(500, 3));
        let actions = planner.requests(&own);
        let requests = asks(&actions);
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].1.len(), 1, "one summary of everything");
        let parts = own.answer(&requests[0].1);
        assert!(parts.is_empty());
        let after = planner.answered(peer(1), &parts, CHARTER, &own, CHARTER);
        assert!(after.is_empty());
        assert_eq!(planner.session_count(), 0);
    }

    #[test]
    fn rounds_take_peers_in_turn() {
        let mut planner = SyncPlanner::new(2, GAP);
        for i in 1..=5 {
            planner.connected(peer(i));
        }
        // Sessions of the connections end in step.
        let own = HeadSet::new(heads(10, 1));
        drive(&mut planner, &own, &own);
        let mut seen = Vec::new();
        for _ in 0..5 {
            planner.tick();
            let requests = asks(&planner.requests(&own));
            assert_eq!(requests.len(), 2);
            seen.extend(requests.iter().map(|(peer, _)| *peer));
            for (peer, summaries) in requests {
                let parts = own.answer(&summaries);
                planner.answered(peer, &parts, CHARTER, &own, CHARTER);
            }
        }
        // Ten turns over five peers: each twice.
        for i in 1..=5 {
            assert_eq!(seen.iter().filter(|p| **p == peer(i)).count(), 2);
        }
    }

    #[test]
    fn heads_ahead_of_ours_become_fetches() {
        let mut planner = SyncPlanner::new(1, GAP);
        planner.connected(peer(1));
        let own = HeadSet::new(heads(300, 5));
        let mut newer = heads(300, 5);
        newer[42].seq = 9;
        newer[43].seq = 2; // behind us: nothing to fetch
        let actions = drive(&mut planner, &own, &HeadSet::new(newer.clone()));
        let fetches: Vec<FeedHead> = actions
            .iter()
            .filter_map(|action| match action {
                SyncAction::Fetch { head, .. } => Some(*head),
                _ => None,
            })
            .collect();
        assert_eq!(fetches, vec![newer[42]]);
    }

    #[test]
    fn a_newer_charter_at_the_peer_is_fetched() {
        let mut planner = SyncPlanner::new(1, GAP);
        planner.connected(peer(1));
        let own = HeadSet::default();
        let requests = asks(&planner.requests(&own));
        let actions = planner.answered(peer(1), &[], (2, Hash([2; 32])), &own, CHARTER);
        assert_eq!(requests.len(), 1);
        assert_eq!(actions, vec![SyncAction::FetchCharters { peer: peer(1) }]);
    }

    #[test]
    fn a_peer_answering_out_of_turn_is_struck_and_the_next_is_asked() {
        let mut planner = SyncPlanner::new(1, GAP);
        planner.connected(peer(1));
        planner.connected(peer(2));
        let own = HeadSet::new(heads(50, 1));
        drive(&mut planner, &own, &own);
        planner.tick();
        let requests = asks(&planner.requests(&own));
        let (bad, _) = requests[0];
        // A split into one range as wide as the question: it would never end.
        let parts = [Part::Split(vec![own.summary(KeyRange::ALL)])];
        let actions = planner.answered(bad, &parts, CHARTER, &own, CHARTER);
        assert!(actions.contains(&SyncAction::Strike {
            peer: bad,
            why: "reconcile answer does not fit the question"
        }));
        let next = asks(&planner.requests(&own));
        assert_eq!(next.len(), 1);
        assert_ne!(next[0].0, bad, "another peer is asked at once");
    }

    #[test]
    fn a_stalling_peer_is_struck_and_another_asked() {
        let mut planner = SyncPlanner::new(1, GAP);
        planner.connected(peer(1));
        planner.connected(peer(2));
        let own = HeadSet::default();
        let first = asks(&planner.requests(&own));
        assert_eq!(first.len(), 2);
        let actions = planner.failed(peer(1), true);
        assert!(matches!(actions.as_slice(), [SyncAction::Strike { .. }]));
        // Peer 2's session is still open; after it ends the next round can reach peer 1.
        planner.answered(peer(2), &[], CHARTER, &own, CHARTER);
        assert_eq!(planner.session_count(), 0);
        planner.failed(peer(2), false);
        assert_eq!(planner.session_count(), 0);
    }

    #[test]
    fn a_refusal_ends_the_session_without_asking_again_before_the_next_round() {
        let mut planner = SyncPlanner::new(1, GAP);
        planner.connected(peer(1));
        let own = HeadSet::default();
        assert_eq!(asks(&planner.requests(&own)).len(), 1);
        // "Busy", or a node that does not reconcile: no strike, and nobody is asked at once.
        assert!(planner.failed(peer(1), false).is_empty());
        assert!(asks(&planner.requests(&own)).is_empty());
        planner.tick();
        assert_eq!(asks(&planner.requests(&own)).len(), 1);
    }

    #[test]
    fn a_peer_that_differs_from_us_is_reconciled_with_the_other_way() {
        let mut planner = SyncPlanner::new(1, GAP);
        planner.connected(peer(1));
        let own = HeadSet::new(heads(20, 1));
        drive(&mut planner, &own, &own);
        // Peer 1 asked and we answered with differences: we ask it in turn, once.
        let now = Instant::now();
        planner.peer_differs(peer(1), now);
        planner.peer_differs(peer(1), now);
        let requests = asks(&planner.requests(&own));
        assert_eq!(requests.len(), 1);
        planner.answered(peer(1), &own.answer(&requests[0].1), CHARTER, &own, CHARTER);
        // Two nodes that differ for good do not start each other's sessions back to back.
        planner.peer_differs(peer(1), now + GAP / 2);
        assert!(asks(&planner.requests(&own)).is_empty());
        planner.peer_differs(peer(1), now + GAP);
        assert_eq!(asks(&planner.requests(&own)).len(), 1);
        // Not a peer we are connected to: nothing.
        planner.peer_differs(peer(9), now + GAP * 3);
        assert!(asks(&planner.requests(&own)).is_empty());
    }

    #[test]
    fn sessions_end_with_the_connection() {
        let mut planner = SyncPlanner::new(1, GAP);
        planner.connected(peer(1));
        let own = HeadSet::default();
        planner.requests(&own);
        planner.disconnected(&peer(1));
        assert_eq!(planner.session_count(), 0);
        // A late answer is ignored.
        assert!(
            planner
                .answered(peer(1), &[], CHARTER, &own, CHARTER)
                .is_empty()
        );
    }

    #[test]
    fn a_peer_that_never_narrows_is_cut_off() {
        let mut planner = SyncPlanner::new(1, GAP);
        planner.connected(peer(1));
        let own = HeadSet::new(heads(2000, 1));
        let other = HeadSet::new(heads(2000, 2));
        let mut struck = false;
        // A dishonest responder answering each range with a split of it into two valid
        // halves forever (the honest one would have sent heads long before).
        for _ in 0..(MAX_ROUNDS + 2) {
            let requests = asks(&planner.requests(&own));
            let Some((peer, summaries)) = requests.into_iter().next() else {
                break;
            };
            let parts: Vec<Part> = summaries
                .iter()
                .map(|summary| {
                    let mid = other.in_range(&summary.range);
                    let middle = mid.get(mid.len() / 2).map(|h| h.author);
                    let Some(middle) = middle.filter(|m| *m != summary.range.lower) else {
                        return Part::Heads {
                            range: summary.range,
                            heads: mid.to_vec(),
                        };
                    };
                    Part::Split(vec![
                        other.summary(KeyRange {
                            lower: summary.range.lower,
                            upper: Some(middle),
                        }),
                        other.summary(KeyRange {
                            lower: middle,
                            upper: summary.range.upper,
                        }),
                    ])
                })
                .collect();
            let actions = planner.answered(peer, &parts, CHARTER, &own, CHARTER);
            if actions
                .iter()
                .any(|action| matches!(action, SyncAction::Strike { .. }))
            {
                struck = true;
                break;
            }
        }
        assert!(struck);
    }
}
