//! Range-based reconciliation of feed heads: how two nodes find the feeds on which they
//! differ with bytes that grow with the difference, not with the federation.
//!
//! Every node holds one head per feed, `(author, seq, id)`, sorted by author. A range of
//! author keys is summarised by its count and a [`Fingerprint`]: a hash over the sum,
//! modulo 2^256, of one hash per head, so a summary does not depend on how the range was
//! put together and two nodes with the same heads in a range agree on it.
//!
//! The asker sends summaries of ranges (at first one range: every author). The responder
//! compares each with its own summary of the same range and answers only the ranges that
//! differ: with its heads there when they are few ([`LEAF_HEADS`], or any number up to
//! [`MAX_HEADS_PER_ANSWER`] when the asker holds nothing in the range), otherwise with
//! summaries of [`SPLIT`] narrower sub-ranges. The asker compares those with its own and
//! asks again about the sub-ranges that still differ. Two nodes in step exchange one
//! summary and an empty answer; a difference in a few feeds costs a few rounds of a few
//! summaries, about log₁₆ of the number of feeds.
//!
//! The responder's heads tell the asker which feeds it lacks; it then fetches those with
//! `Range` requests. Reconciliation is one-way (the asker learns what the responder has):
//! each node asks its own peers in turn, so both sides of a difference are found.
//!
//! [`check_answer`] holds an answer to what was asked, so a peer cannot make the asker
//! descend forever (every split must be strictly narrower than the range it splits) or
//! plan for feeds outside what it asked about.

use sha2::{Digest, Sha256};

use crate::crypto::PublicKey;
use crate::entry::FeedHead;

/// Most ranges one request summarises (each about 90 bytes on the wire, so a request stays
/// well under the 4 KiB a responder reads).
pub const MAX_RANGES: usize = 32;

/// A differing range holding at most this many heads is answered with the heads.
pub const LEAF_HEADS: usize = 32;

/// How many sub-ranges a differing range with more heads is split into.
pub const SPLIT: usize = 16;

/// Heads one answer carries for ranges the asker holds nothing of (about 75 bytes each):
/// a node that holds nothing learns up to this many feeds in one round trip. Small ranges
/// ([`LEAF_HEADS`] or fewer) are answered with their heads beyond it, so an answer holds at
/// most [`MAX_HEADS_IN_ANSWER`].
pub const MAX_HEADS_PER_ANSWER: usize = 4096;

/// The most heads any answer holds: the budget, plus small ranges past it.
pub const MAX_HEADS_IN_ANSWER: usize = MAX_HEADS_PER_ANSWER + MAX_RANGES * LEAF_HEADS;

/// A range of author keys: from `lower` (included) to `upper` (excluded; `None`: to the
/// end of the key space).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, bincode::Encode, bincode::Decode)]
pub struct KeyRange {
    /// The first author key in the range.
    pub lower: PublicKey,
    /// The first author key after it, or `None` for the end of the key space.
    pub upper: Option<PublicKey>,
}

impl KeyRange {
    /// Every author.
    pub const ALL: KeyRange = KeyRange {
        lower: PublicKey([0; 32]),
        upper: None,
    };

    /// Whether `author` falls in the range.
    pub fn contains(&self, author: &PublicKey) -> bool {
        *author >= self.lower && self.upper.is_none_or(|upper| *author < upper)
    }

    /// Whether the range holds no key at all.
    pub fn is_empty(&self) -> bool {
        self.upper.is_some_and(|upper| upper <= self.lower)
    }
}

/// A hash of the heads in a range; equal sets of heads have equal fingerprints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, bincode::Encode, bincode::Decode)]
pub struct Fingerprint(pub [u8; 16]);

/// What a node holds in a range: how many heads, and their fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Summary {
    /// The range summarised.
    pub range: KeyRange,
    /// Heads in the range.
    pub count: u32,
    /// Their fingerprint.
    pub fingerprint: Fingerprint,
}

impl Summary {
    /// Whether `other` says the same of the same range.
    pub fn matches(&self, other: &Summary) -> bool {
        self.count == other.count && self.fingerprint == other.fingerprint
    }
}

/// The responder's word on one range that differs.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum Part {
    /// Every head the responder holds in `range`, by author.
    Heads {
        /// The range asked about.
        range: KeyRange,
        /// The responder's heads in it, sorted by author.
        heads: Vec<FeedHead>,
    },
    /// Summaries of narrower ranges that, together and in order, cover a range asked about.
    Split(Vec<Summary>),
}

/// An answer that does not fit what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconcileError {
    /// More parts than ranges asked, or two parts for one range.
    #[error("the answer has parts for ranges that were not asked about")]
    Unasked,
    /// Heads outside their range, out of order, or too many.
    #[error("the answer's heads are outside their range, unsorted or too many")]
    BadHeads,
    /// A split that is not strictly narrower, leaves gaps, or has too many parts.
    #[error("the answer splits a range into parts that do not cover it exactly")]
    BadSplit,
}

/// A node's feed heads, sorted by author, one per author.
#[derive(Debug, Clone, Default)]
pub struct HeadSet {
    heads: Vec<FeedHead>,
}

impl HeadSet {
    /// The set of `heads`; of two heads of one author, the first is kept.
    pub fn new(mut heads: Vec<FeedHead>) -> HeadSet {
        heads.sort_by_key(|head| head.author);
        heads.dedup_by(|later, first| later.author == first.author);
        HeadSet { heads }
    }

    /// How many heads.
    pub fn len(&self) -> usize {
        self.heads.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.heads.is_empty()
    }

    /// The head of `author`'s feed, if held.
    pub fn get(&self, author: &PublicKey) -> Option<&FeedHead> {
        self.heads
            .binary_search_by(|head| head.author.cmp(author))
            .ok()
            .and_then(|index| self.heads.get(index))
    }

    /// The heads in `range`, sorted by author.
    pub fn in_range(&self, range: &KeyRange) -> &[FeedHead] {
        let start = self.heads.partition_point(|head| head.author < range.lower);
        let end = match range.upper {
            Some(upper) => self.heads.partition_point(|head| head.author < upper),
            None => self.heads.len(),
        };
        self.heads.get(start..end.max(start)).unwrap_or_default()
    }

    /// What this set holds in `range`.
    pub fn summary(&self, range: KeyRange) -> Summary {
        summarise(range, self.in_range(&range))
    }

    /// The responder's answer to `asked`: a part for each range that differs, in the order
    /// asked, for at most [`MAX_RANGES`] ranges.
    pub fn answer(&self, asked: &[Summary]) -> Vec<Part> {
        let mut parts = Vec::new();
        let mut budget = MAX_HEADS_PER_ANSWER;
        for theirs in asked.iter().take(MAX_RANGES) {
            if theirs.range.is_empty() {
                continue;
            }
            let mine = self.in_range(&theirs.range);
            if summarise(theirs.range, mine).matches(theirs) {
                continue;
            }
            // A small range is always answered with its heads (a split of one head would
            // not narrow); a large one only while the answer's budget lasts.
            let small = mine.len() <= LEAF_HEADS;
            if small || (theirs.count == 0 && mine.len() <= budget) {
                budget = budget.saturating_sub(mine.len());
                parts.push(Part::Heads {
                    range: theirs.range,
                    heads: mine.to_vec(),
                });
            } else {
                parts.push(Part::Split(split(theirs.range, mine)));
            }
        }
        parts
    }
}

/// Splits `range`, holding `heads` (more than [`SPLIT`] of them, sorted), into [`SPLIT`]
/// sub-ranges of about equal counts.
fn split(range: KeyRange, heads: &[FeedHead]) -> Vec<Summary> {
    let per = heads.len().div_ceil(SPLIT).max(1);
    let chunks: Vec<&[FeedHead]> = heads.chunks(per).collect();
    let mut summaries = Vec::with_capacity(chunks.len());
    for (index, chunk) in chunks.iter().enumerate() {
        let lower = if index == 0 {
            range.lower
        } else {
            chunk.first().map_or(range.lower, |head| head.author)
        };
        let upper = chunks
            .get(index + 1)
            .and_then(|next| next.first())
            .map_or(range.upper, |head| Some(head.author));
        summaries.push(summarise(KeyRange { lower, upper }, chunk));
    }
    summaries
}

/// The summary of `heads`, the heads in `range`.
fn summarise(range: KeyRange, heads: &[FeedHead]) -> Summary {
    // A 256-bit sum of one hash per head: the same for the same set in any order.
    let mut sum = [0u64; 4];
    for head in heads {
        let mut hasher = Sha256::new();
        hasher.update(head.author.0);
        hasher.update(head.seq.to_be_bytes());
        hasher.update(head.id.0);
        let digest: [u8; 32] = hasher.finalize().into();
        let mut carry = false;
        for (limb, bytes) in sum.iter_mut().zip(digest.chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(bytes);
            let (partial, overflow_a) = limb.overflowing_add(u64::from_le_bytes(word));
            let (total, overflow_b) = partial.overflowing_add(u64::from(carry));
            *limb = total;
            carry = overflow_a || overflow_b;
        }
    }
    let count = u32::try_from(heads.len()).unwrap_or(u32::MAX);
    let mut hasher = Sha256::new();
    hasher.update(b"threatmesh/reconcile/1");
    for limb in sum {
        hasher.update(limb.to_le_bytes());
    }
    hasher.update(count.to_be_bytes());
    let digest: [u8; 32] = hasher.finalize().into();
    let mut fingerprint = [0u8; 16];
    fingerprint.copy_from_slice(&digest[..16]);
    Summary {
        range,
        count,
        fingerprint: Fingerprint(fingerprint),
    }
}

/// Checks that `parts` answers `asked`: each part is about a distinct range that was
/// asked, heads lie in their range in author order and within [`MAX_HEADS_IN_ANSWER`],
/// and each split covers its range exactly with at most [`SPLIT`] strictly narrower,
/// non-empty ranges.
pub fn check_answer(asked: &[Summary], parts: &[Part]) -> Result<(), ReconcileError> {
    let mut answered = vec![false; asked.len()];
    let mut heads_total = 0usize;
    for part in parts {
        let range = match part {
            Part::Heads { range, heads } => {
                heads_total = heads_total.saturating_add(heads.len());
                let in_order = heads.windows(2).all(|pair| pair[0].author < pair[1].author);
                if heads_total > MAX_HEADS_IN_ANSWER
                    || !in_order
                    || !heads.iter().all(|head| range.contains(&head.author))
                {
                    return Err(ReconcileError::BadHeads);
                }
                *range
            }
            Part::Split(summaries) => covered(summaries)?,
        };
        let index = asked
            .iter()
            .zip(&answered)
            .position(|(summary, done)| summary.range == range && !done)
            .ok_or(ReconcileError::Unasked)?;
        answered[index] = true;
    }
    Ok(())
}

/// The range a split covers, if its parts are contiguous, non-empty, strictly narrower
/// than the whole and at most [`SPLIT`].
fn covered(summaries: &[Summary]) -> Result<KeyRange, ReconcileError> {
    let (Some(first), Some(last)) = (summaries.first(), summaries.last()) else {
        return Err(ReconcileError::BadSplit);
    };
    if summaries.len() < 2 || summaries.len() > SPLIT {
        return Err(ReconcileError::BadSplit);
    }
    let contiguous = summaries
        .windows(2)
        .all(|pair| pair[0].range.upper == Some(pair[1].range.lower));
    if !contiguous || summaries.iter().any(|summary| summary.range.is_empty()) {
        return Err(ReconcileError::BadSplit);
    }
    Ok(KeyRange {
        lower: first.range.lower,
        upper: last.range.upper,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::crypto::Hash;

    fn head(author: u8, second: u8, seq: u64) -> FeedHead {
        let mut key = [0; 32];
        key[0] = author;
        key[1] = second;
        FeedHead {
            author: PublicKey(key),
            seq,
            id: Hash::of(&[author, second, seq as u8]),
        }
    }

    fn many(count: usize) -> Vec<FeedHead> {
        (0..count)
            .map(|i| head((i * 251 % 256) as u8, (i / 256) as u8, 10))
            .collect()
    }

    /// Runs reconciliation of `asker` against `responder` to the end; returns the heads the
    /// asker learnt and the number of round trips.
    fn reconcile(asker: &HeadSet, responder: &HeadSet) -> (Vec<FeedHead>, usize) {
        let mut pending = vec![KeyRange::ALL];
        let mut learnt = Vec::new();
        let mut rounds = 0;
        while !pending.is_empty() {
            rounds += 1;
            assert!(rounds < 20, "reconciliation must end");
            let take = pending.len().min(MAX_RANGES);
            let asked: Vec<Summary> = pending
                .drain(..take)
                .map(|range| asker.summary(range))
                .collect();
            let parts = responder.answer(&asked);
            check_answer(&asked, &parts).unwrap();
            for part in parts {
                match part {
                    Part::Heads { heads, .. } => learnt.extend(heads),
                    Part::Split(summaries) => pending.extend(
                        summaries
                            .iter()
                            .filter(|theirs| !asker.summary(theirs.range).matches(theirs))
                            .map(|theirs| theirs.range),
                    ),
                }
            }
        }
        (learnt, rounds)
    }

    #[test]
    fn equal_sets_exchange_one_summary_and_an_empty_answer() {
        let heads = HeadSet::new(many(1200));
        let asked = [heads.summary(KeyRange::ALL)];
        assert!(heads.answer(&asked).is_empty());
        let (learnt, rounds) = reconcile(&heads, &heads);
        assert!(learnt.is_empty());
        assert_eq!(rounds, 1);
    }

    #[test]
    fn summary_does_not_depend_on_order() {
        let mut heads = many(100);
        let forward = HeadSet::new(heads.clone()).summary(KeyRange::ALL);
        heads.reverse();
        assert_eq!(HeadSet::new(heads).summary(KeyRange::ALL), forward);
    }

    #[test]
    fn one_newer_feed_is_found_in_a_few_rounds_with_few_heads() {
        let mut theirs = many(1200);
        let mine = HeadSet::new(theirs.clone());
        theirs[700].seq += 1;
        let changed = theirs[700];
        let (learnt, rounds) = reconcile(&mine, &HeadSet::new(theirs));
        assert!(learnt.contains(&changed));
        assert!(learnt.len() <= LEAF_HEADS, "learnt {} heads", learnt.len());
        assert!(rounds <= 4, "{rounds} rounds");
    }

    #[test]
    fn a_node_with_nothing_learns_every_head_in_one_round() {
        let theirs = HeadSet::new(many(1200));
        let (mut learnt, rounds) = reconcile(&HeadSet::default(), &theirs);
        learnt.sort_by_key(|head| head.author);
        assert_eq!(learnt, theirs.in_range(&KeyRange::ALL));
        assert_eq!(rounds, 1);
    }

    #[test]
    fn every_difference_is_found_whichever_side_holds_more() {
        let all = many(500);
        let mine: Vec<FeedHead> = all.iter().step_by(3).copied().collect();
        let mut theirs: Vec<FeedHead> = all.iter().step_by(2).copied().collect();
        theirs[10].seq = 99;
        let theirs_set = HeadSet::new(theirs.clone());
        let mine_set = HeadSet::new(mine.clone());
        let (learnt, _) = reconcile(&mine_set, &theirs_set);
        for head in &theirs {
            if mine_set.get(&head.author) != Some(head) {
                assert!(learnt.contains(head), "missed {head:?}");
            }
        }
    }

    #[test]
    fn answers_that_do_not_fit_the_question_are_refused() {
        let heads = HeadSet::new(many(100));
        let asked = [HeadSet::default().summary(KeyRange::ALL)];
        let narrow = KeyRange {
            lower: PublicKey([1; 32]),
            upper: Some(PublicKey([2; 32])),
        };
        // A part for a range nobody asked about.
        let unasked = [Part::Heads {
            range: narrow,
            heads: Vec::new(),
        }];
        assert_eq!(check_answer(&asked, &unasked), Err(ReconcileError::Unasked));
        // Heads outside their range.
        let outside = [Part::Heads {
            range: KeyRange::ALL,
            heads: vec![head(0, 0, 1), head(0, 0, 2)],
        }];
        assert_eq!(
            check_answer(&asked, &outside),
            Err(ReconcileError::BadHeads)
        );
        // A "split" into one part as wide as the range: it would never end.
        let same = [Part::Split(vec![heads.summary(KeyRange::ALL)])];
        assert_eq!(check_answer(&asked, &same), Err(ReconcileError::BadSplit));
        // A split with a gap.
        let gap = [Part::Split(vec![
            heads.summary(KeyRange {
                lower: PublicKey([0; 32]),
                upper: Some(PublicKey([1; 32])),
            }),
            heads.summary(KeyRange {
                lower: PublicKey([2; 32]),
                upper: None,
            }),
        ])];
        assert_eq!(check_answer(&asked, &gap), Err(ReconcileError::BadSplit));
        // Two parts for one range.
        let twice = [
            Part::Heads {
                range: KeyRange::ALL,
                heads: Vec::new(),
            },
            Part::Heads {
                range: KeyRange::ALL,
                heads: Vec::new(),
            },
        ];
        assert_eq!(check_answer(&asked, &twice), Err(ReconcileError::Unasked));
    }

    #[test]
    fn small_ranges_are_answered_with_heads_after_the_budget_is_spent() {
        // The first range, which the asker holds nothing of, takes the whole budget; a
        // small range after it must still get heads (a "split" of one head would not
        // narrow, and the asker would refuse it).
        let theirs = HeadSet::new(many(MAX_HEADS_PER_ANSWER + 1));
        let heads = theirs.in_range(&KeyRange::ALL);
        let last = heads[heads.len() - 1].author;
        let first_range = KeyRange {
            lower: PublicKey([0; 32]),
            upper: Some(last),
        };
        let second_range = KeyRange {
            lower: last,
            upper: None,
        };
        let mut other = *theirs.get(&last).unwrap();
        other.seq += 1;
        let asked = [
            HeadSet::default().summary(first_range),
            HeadSet::new(vec![other]).summary(second_range),
        ];
        let parts = theirs.answer(&asked);
        check_answer(&asked, &parts).unwrap();
        assert!(matches!(&parts[1], Part::Heads { heads, .. } if heads.len() == 1));
    }

    #[test]
    fn heads_of_an_author_are_kept_once() {
        let set = HeadSet::new(vec![head(5, 0, 1), head(5, 0, 2), head(3, 0, 1)]);
        assert_eq!(set.len(), 2);
        assert_eq!(set.get(&head(5, 0, 0).author).map(|h| h.seq), Some(1));
    }
}
