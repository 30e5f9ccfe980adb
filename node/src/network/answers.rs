//! Sync answers this node owes its peers: which request to read from the store next, and
//! how much each peer holds of this node's memory while its answers go out.
//!
//! Every peer's requests are answered in turn with every other peer's: at most
//! [`READS_AT_ONCE`] store reads run at once, at most one per peer, handed out round robin,
//! so a peer that asks a lot waits behind its own requests, never in front of another's,
//! and nobody is refused because someone else keeps the readers busy. A request waits in
//! its peer's queue until its turn; libp2p's request timeout drops it if that never comes.
//!
//! Each peer may hold at most [`MAX_OPEN_PER_PEER`] answers (waiting, being read, or being
//! sent). A request beyond is refused and held against the peer: an honest node never
//! asks that many at once (it keeps at most `FETCHES_PER_PEER` fetches, one reconciliation
//! and one charters request in flight with a peer). Answers read but not yet taken by the
//! peer are counted in bytes; a peer holding [`MAX_BYTES_PER_PEER`] or more gets no further
//! read until it takes what it was sent. So a member that asks for large pages and never
//! reads them holds at most that much (and one page being read) until the codec's
//! stall timeout drops those streams, each drop a strike against it.
//!
//! [`AnswerQueue`] owns no swarm and reads no store: the event loop admits requests, runs
//! the reads it hands out, and tells it when each answer was read and when it ended.

use std::collections::{HashMap, VecDeque};

use libp2p::PeerId;
use threatmesh_protocol::wire::{MAX_GOSSIP_BYTES, MAX_RANGE_BYTES, Response};

/// Store reads for sync answers running at once, across all peers: each may read a page of
/// up to `MAX_RANGE_BYTES` on a blocking thread.
pub(crate) const READS_AT_ONCE: usize = 8;

/// Answers one peer may hold at once: waiting for a read, being read, or being sent. Twice
/// what an honest node ever asks at once (two fetches, a reconciliation and a charters
/// request), leaving room for a request the asker gave up on whose answer is still going
/// out. A request beyond it is refused and struck.
pub const MAX_OPEN_PER_PEER: usize = 8;

/// Bytes of answers one peer may hold unread before its next read waits: two full range
/// pages, enough for an honest node's two fetches in flight to stream back to back. What
/// one peer can pin of this node's memory is this plus one answer being read.
pub const MAX_BYTES_PER_PEER: usize = 2 * (MAX_RANGE_BYTES + MAX_GOSSIP_BYTES);

/// About how many bytes `response` takes on the wire: its payload bytes, plus a little per
/// item for lengths and fixed fields. Used to count what a peer holds, not to frame it.
pub(crate) fn answer_bytes(response: &Response) -> usize {
    /// A feed head (author, seq, id) or a summary, with its varints: an upper estimate.
    const HEAD_BYTES: usize = 96;
    let items: usize = match response {
        Response::Heads(heads) => heads.len() * HEAD_BYTES,
        Response::Range { entries, .. } => entries.iter().map(|entry| entry.len() + 8).sum(),
        Response::Charters(charters) => charters
            .iter()
            .map(|charter| charter.charter.len() + charter.signatures.len() * 104 + 8)
            .sum(),
        Response::Refused(why) => why.len(),
        Response::Reconcile { parts, .. } => parts
            .iter()
            .map(|part| match part {
                threatmesh_protocol::reconcile::Part::Heads { heads, .. } => {
                    (heads.len() + 1) * HEAD_BYTES
                }
                threatmesh_protocol::reconcile::Part::Split(summaries) => {
                    (summaries.len() + 1) * HEAD_BYTES
                }
            })
            .sum(),
    };
    items + 64
}

/// Where one admitted request is.
#[derive(Debug)]
enum Stage {
    /// Read from the store now; `wanted` is false once the request ended meanwhile.
    Reading { wanted: bool },
    /// Read, and going out: this many bytes.
    Sending(usize),
}

/// One peer's answers.
#[derive(Debug)]
struct PeerAnswers<I, T> {
    waiting: VecDeque<(I, T)>,
    started: HashMap<I, Stage>,
}

impl<I, T> PeerAnswers<I, T> {
    fn open(&self) -> usize {
        self.waiting.len() + self.started.len()
    }

    fn is_reading(&self) -> bool {
        self.started
            .values()
            .any(|stage| matches!(stage, Stage::Reading { .. }))
    }

    fn bytes(&self) -> usize {
        self.started
            .values()
            .map(|stage| match stage {
                Stage::Sending(bytes) => *bytes,
                Stage::Reading { .. } => 0,
            })
            .sum()
    }
}

/// The answers owed, by peer. `I` names a request (libp2p's inbound request id), `T` is
/// what the caller needs to answer it (the request and its response channel).
#[derive(Debug)]
pub(crate) struct AnswerQueue<I, T> {
    peers: HashMap<PeerId, PeerAnswers<I, T>>,
    /// Peers with requests waiting, in the order they get their next read.
    turn: VecDeque<PeerId>,
    /// Reads running, every peer's (including reads of requests that ended meanwhile).
    reading: usize,
    max_open: usize,
    max_bytes: usize,
}

/// A request refused because its peer holds [`MAX_OPEN_PER_PEER`] answers already; the
/// caller gets back what it handed in, to answer with a refusal.
#[derive(Debug)]
pub(crate) struct OverLimit<T>(pub(crate) T);

impl<I: Copy + Eq + std::hash::Hash, T> AnswerQueue<I, T> {
    /// An empty queue with the bounds above.
    pub(crate) fn new() -> AnswerQueue<I, T> {
        AnswerQueue::with_bounds(MAX_OPEN_PER_PEER, MAX_BYTES_PER_PEER)
    }

    fn with_bounds(max_open: usize, max_bytes: usize) -> AnswerQueue<I, T> {
        AnswerQueue {
            peers: HashMap::new(),
            turn: VecDeque::new(),
            reading: 0,
            max_open,
            max_bytes,
        }
    }

    /// Queues request `id` of `peer`, unless the peer holds the most answers it may.
    pub(crate) fn admit(&mut self, peer: PeerId, id: I, item: T) -> Result<(), OverLimit<T>> {
        let answers = self.peers.entry(peer).or_insert_with(|| PeerAnswers {
            waiting: VecDeque::new(),
            started: HashMap::new(),
        });
        if answers.open() >= self.max_open {
            return Err(OverLimit(item));
        }
        answers.waiting.push_back((id, item));
        if !self.turn.contains(&peer) {
            self.turn.push_back(peer);
        }
        Ok(())
    }

    /// The next request to read from the store, if a reader is free and some peer with a
    /// request waiting is neither being read for nor over its bytes. The caller reads it
    /// and reports with [`AnswerQueue::read`].
    pub(crate) fn next(&mut self) -> Option<(PeerId, I, T)> {
        if self.reading >= READS_AT_ONCE {
            return None;
        }
        for _ in 0..self.turn.len() {
            let peer = self.turn.pop_front()?;
            let Some(answers) = self.peers.get_mut(&peer) else {
                continue; // gone: out of the turn
            };
            if answers.waiting.is_empty() {
                continue;
            }
            if answers.is_reading() || answers.bytes() >= self.max_bytes {
                self.turn.push_back(peer);
                continue;
            }
            let Some((id, item)) = answers.waiting.pop_front() else {
                continue;
            };
            answers.started.insert(id, Stage::Reading { wanted: true });
            if !answers.waiting.is_empty() {
                self.turn.push_back(peer);
            }
            self.reading += 1;
            return Some((peer, id, item));
        }
        None
    }

    /// The read of request `id` of `peer` is done and its answer is `bytes` long. Returns
    /// whether the answer is still wanted (the request did not end meanwhile): only then
    /// should it be sent.
    pub(crate) fn read(&mut self, peer: PeerId, id: I, bytes: usize) -> bool {
        self.reading = self.reading.saturating_sub(1);
        let Some(answers) = self.peers.get_mut(&peer) else {
            return false;
        };
        match answers.started.get(&id) {
            Some(Stage::Reading { wanted: true }) => {
                answers.started.insert(id, Stage::Sending(bytes));
                // A peer that waited for this read may now get its turn.
                if !answers.waiting.is_empty() && !self.turn.contains(&peer) {
                    self.turn.push_back(peer);
                }
                true
            }
            _ => {
                answers.started.remove(&id);
                self.forget_if_idle(peer);
                false
            }
        }
    }

    /// Request `id` of `peer` ended: its answer was sent, or it failed (timed out, the
    /// connection closed, the peer read too slowly). What it held is free; a waiting
    /// request's item is dropped.
    pub(crate) fn ended(&mut self, peer: PeerId, id: I) {
        let Some(answers) = self.peers.get_mut(&peer) else {
            return;
        };
        answers.waiting.retain(|(waiting, _)| *waiting != id);
        match answers.started.get_mut(&id) {
            // The read finishes later; it still occupies a reader until then.
            Some(Stage::Reading { wanted }) => *wanted = false,
            Some(Stage::Sending(_)) => {
                answers.started.remove(&id);
            }
            None => {}
        }
        self.forget_if_idle(peer);
    }

    /// The last connection to `peer` closed: nothing of it is owed any more. A read of
    /// its still running is counted until it reports.
    pub(crate) fn disconnected(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
        self.turn.retain(|known| known != peer);
    }

    fn forget_if_idle(&mut self, peer: PeerId) {
        if self
            .peers
            .get(&peer)
            .is_some_and(|answers| answers.open() == 0)
        {
            self.peers.remove(&peer);
            self.turn.retain(|known| *known != peer);
        }
    }

    /// Answers held now, every peer's, and the bytes of those read and going out.
    pub(crate) fn held(&self) -> (usize, usize) {
        self.peers.values().fold((0, 0), |(open, bytes), answers| {
            (open + answers.open(), bytes + answers.bytes())
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::network::testing::peer;

    /// Request ids: libp2p makes its own only for real streams.
    fn id(n: u64) -> u64 {
        n
    }

    #[test]
    fn a_peer_over_its_count_is_refused_and_others_are_not() {
        let mut queue = AnswerQueue::<u64, u64>::new();
        let (greedy, honest) = (peer(1), peer(2));
        for n in 0..MAX_OPEN_PER_PEER as u64 {
            assert!(queue.admit(greedy, id(n), n).is_ok());
        }
        assert!(queue.admit(greedy, id(100), 100).is_err());
        assert!(queue.admit(honest, id(200), 200).is_ok());
        assert_eq!(queue.held().0, MAX_OPEN_PER_PEER + 1);
    }

    #[test]
    fn reads_go_round_robin_one_per_peer_so_a_greedy_peer_cannot_hog_the_readers() {
        let mut queue = AnswerQueue::<u64, u64>::new();
        let (greedy, honest) = (peer(1), peer(2));
        for n in 0..MAX_OPEN_PER_PEER as u64 {
            queue.admit(greedy, id(n), n).unwrap();
        }
        queue.admit(honest, id(100), 100).unwrap();
        // One read per peer at a time: the greedy peer's first, then the honest one's,
        // then nothing until a read reports, however many readers are free.
        let first = queue.next().unwrap();
        let second = queue.next().unwrap();
        assert_eq!((first.0, second.0), (greedy, honest));
        assert!(queue.next().is_none());
        assert!(queue.read(greedy, first.1, 10));
        assert_eq!(queue.next().unwrap().0, greedy);
    }

    #[test]
    fn a_peer_that_does_not_take_its_answers_waits_for_its_next_read() {
        let mut queue = AnswerQueue::<u64, u64>::with_bounds(8, 1000);
        let slow = peer(1);
        for n in 0..3 {
            queue.admit(slow, id(n), n).unwrap();
        }
        let (_, first, _) = queue.next().unwrap();
        assert!(queue.read(slow, first, 1000));
        // 1000 bytes unread: no more reads for it...
        assert!(queue.next().is_none());
        assert_eq!(queue.held(), (3, 1000));
        // ...until they are taken.
        queue.ended(slow, first);
        let (_, second, _) = queue.next().unwrap();
        assert!(queue.read(slow, second, 10));
        assert_eq!(queue.held(), (2, 10));
    }

    #[test]
    fn a_request_that_ends_while_read_is_not_sent_and_everything_is_freed() {
        let mut queue = AnswerQueue::<u64, u64>::new();
        let gone = peer(1);
        queue.admit(gone, id(1), 1).unwrap();
        queue.admit(gone, id(2), 2).unwrap();
        let (_, reading, _) = queue.next().unwrap();
        queue.ended(gone, reading);
        queue.ended(gone, id(2));
        assert!(!queue.read(gone, reading, 10));
        assert_eq!(queue.held(), (0, 0));
        assert!(queue.next().is_none());
        // Readers are given back even for a peer that disconnected mid-read.
        for n in 0..READS_AT_ONCE as u64 {
            queue.admit(peer(10 + n as u8), id(10 + n), n).unwrap();
        }
        let started: Vec<_> = std::iter::from_fn(|| queue.next()).collect();
        assert_eq!(started.len(), READS_AT_ONCE);
        queue.admit(peer(99), id(99), 99).unwrap();
        assert!(queue.next().is_none(), "every reader is busy");
        let (first_peer, first_id, _) = started[0];
        queue.disconnected(&first_peer);
        assert!(!queue.read(first_peer, first_id, 10));
        assert_eq!(queue.next().unwrap().0, peer(99));
    }
}
