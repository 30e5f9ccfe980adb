//! The node's clock, and what peers' entries say about it.
//!
//! [`Clock`] is the one place the network reads the time: the creation time of entries it
//! publishes, the "from the future" check on entries it receives, the time it stores them
//! at and certificate windows. It is the system clock plus an offset that is zero unless a
//! test (or a lab that wants a deliberately skewed node) sets it through the library; the
//! offset can change while the node runs, which is how tests play a clock being fixed.
//!
//! [`ClockWatch`] notices when this node's own clock, not a peer's, is the one that is
//! wrong. Nothing in an entry proves what time it is, so the evidence is a vote: for each
//! organisation, the latest signed entry of one of its nodes and how far its creation time
//! was from this node's clock when it arrived. Entries refused as from the future count
//! (their signature is checked first, so nobody can speak for another organisation), and so
//! do entries accepted from gossip, which carries entries as they are published, so they
//! should look a few seconds old at most. When at least [`WITNESSES`] organisations, and
//! more than half of those heard from recently, are all off in the same direction by more
//! than the tolerance, the node reports a suspected skew: in the status, as a gauge, and in
//! one warning per episode. One organisation, whatever it sends, cannot raise it alone.
//!
//! What is not sound and not built: a node's own entries refused by everyone else leave no
//! trace it can see (a refusal sends nothing back), so a node whose clock is ahead learns
//! it only from the other direction, peers' fresh gossip looking hours old. A majority of
//! organisations whose clocks are wrong the same way looks exactly like this node's clock
//! being wrong; the report says "suspected" for that reason, and never changes what the
//! node accepts or whom it blames.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use serde::Serialize;
use threatmesh_protocol::{PublicKey, Timestamp};
use tokio::time::Instant;
use tracing::{info, warn};

/// Organisations that must agree before the node suspects its own clock.
pub(crate) const WITNESSES: usize = 2;
/// How long an organisation's latest sighting counts. Sync refuses a skewed node the same
/// entries every round, so while the clock is wrong and peers have anything new, the
/// sightings are refreshed well within this.
const SIGHTING_LIFETIME: Duration = Duration::from_secs(3600);

/// The time as the node reads it: the system clock plus an offset (zero normally).
/// Clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// The system clock shifted by `offset_ms` (negative: behind). For tests and labs
    /// that need a node whose clock is wrong.
    pub fn skewed(offset_ms: i64) -> Clock {
        let clock = Clock::default();
        clock.set_offset_ms(offset_ms);
        clock
    }

    /// Shifts this clock (and every clone of it) to `offset_ms` from the system clock.
    pub fn set_offset_ms(&self, offset_ms: i64) {
        self.offset_ms.store(offset_ms, Ordering::Relaxed);
    }

    /// The time now, as the protocol counts it.
    pub fn now(&self) -> Timestamp {
        let system = super::ingest::now().0;
        let offset = self.offset_ms.load(Ordering::Relaxed);
        Timestamp(system.saturating_add_signed(offset))
    }
}

/// One organisation's latest entry, and when it arrived.
#[derive(Debug, Clone, Copy)]
struct Sighting {
    /// The entry's creation time.
    created: Timestamp,
    /// When it arrived, by the monotonic clock: how far the entry was from this node's
    /// clock is worked out when asked, from the clock then, so a clock that was fixed in
    /// the meantime is judged as it is now, not as it was.
    seen: Instant,
}

impl Sighting {
    /// The entry's creation time minus this node's clock (as it reads now) at its arrival,
    /// in milliseconds: positive when the entry looks as if from the future.
    fn ahead_ms(&self, now: Timestamp) -> i64 {
        let elapsed = u64::try_from(self.seen.elapsed().as_millis()).unwrap_or(u64::MAX);
        let arrived = now.0.saturating_sub(elapsed);
        i64::try_from(i128::from(self.created.0) - i128::from(arrived)).unwrap_or(
            if self.created.0 > arrived {
                i64::MAX
            } else {
                i64::MIN
            },
        )
    }
}

/// Whether this node's clock seems wrong, as the status and metrics report it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClockStatus {
    /// How far this node's clock seems to be off, in seconds: negative when it is behind
    /// the organisations' clocks (their new entries look as if from the future and are
    /// refused), positive when ahead (their fresh entries look old). `None`: no suspicion.
    pub suspected_offset_secs: Option<i64>,
    /// The organisations whose entries point that way.
    pub witnesses: Vec<PublicKey>,
    /// Organisations with a recent sighting, skewed or not.
    pub organisations_seen: usize,
}

/// Sightings per organisation (bounded by the organisations the charter authorised).
#[derive(Debug)]
pub(crate) struct ClockWatch {
    clock: Clock,
    tolerance_ms: i64,
    state: std::sync::Mutex<WatchState>,
}

#[derive(Debug, Default)]
struct WatchState {
    sightings: HashMap<PublicKey, Sighting>,
    /// The suspicion last reported in the log, so it is warned about once per episode.
    warned: Option<i64>,
}

impl ClockWatch {
    pub(crate) fn new(clock: Clock, tolerance: Duration) -> ClockWatch {
        ClockWatch {
            clock,
            tolerance_ms: i64::try_from(tolerance.as_millis()).unwrap_or(i64::MAX),
            state: std::sync::Mutex::default(),
        }
    }

    /// The clock watched.
    pub(crate) fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Records a signed entry of organisation `org`, created at `created`, arriving now:
    /// one refused as from the future, or one accepted from gossip (fresh by construction).
    pub(crate) fn sighted(&self, org: PublicKey, created: Timestamp) {
        let mut state = self.lock();
        state.sightings.insert(
            org,
            Sighting {
                created,
                seen: Instant::now(),
            },
        );
        self.assess(&mut state);
    }

    /// Forgets organisations that are no longer members.
    pub(crate) fn retain(&self, is_member: impl Fn(&PublicKey) -> bool) {
        let mut state = self.lock();
        state.sightings.retain(|org, _| is_member(org));
    }

    /// The suspicion now.
    pub(crate) fn status(&self) -> ClockStatus {
        let mut state = self.lock();
        self.assess(&mut state)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WatchState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Weighs the sightings, and logs when a suspicion begins or ends.
    fn assess(&self, state: &mut WatchState) -> ClockStatus {
        let now = self.clock.now();
        let tolerance = self.tolerance_ms;
        state
            .sightings
            .retain(|_, sighting| sighting.seen.elapsed() < SIGHTING_LIFETIME);
        let mut behind = Vec::new();
        let mut ahead = Vec::new();
        for (org, sighting) in &state.sightings {
            let ahead_ms = sighting.ahead_ms(now);
            if ahead_ms > tolerance {
                behind.push((*org, ahead_ms));
            } else if ahead_ms < tolerance.saturating_neg() {
                ahead.push((*org, ahead_ms));
            }
        }
        let seen = state.sightings.len();
        let suspected = [behind, ahead]
            .into_iter()
            .find(|side| side.len() >= WITNESSES && side.len() * 2 > seen);
        let status = match suspected {
            None => ClockStatus {
                suspected_offset_secs: None,
                witnesses: Vec::new(),
                organisations_seen: seen,
            },
            Some(mut side) => {
                side.sort_by_key(|(_, ahead_ms)| *ahead_ms);
                // The median: one organisation with a wild clock moves it little.
                let median_ms = side[side.len() / 2].1;
                let mut witnesses: Vec<PublicKey> = side.into_iter().map(|(org, _)| org).collect();
                witnesses.sort();
                ClockStatus {
                    // Their clocks ahead of ours by x: ours is off by -x.
                    suspected_offset_secs: Some(
                        median_ms
                            .saturating_neg()
                            .saturating_add(500)
                            .div_euclid(1000),
                    ),
                    witnesses,
                    organisations_seen: seen,
                }
            }
        };
        match (state.warned, status.suspected_offset_secs) {
            (None, Some(offset)) => {
                let consequence = if offset < 0 {
                    "their new entries look as if from the future and are refused"
                } else {
                    "their fresh entries look old, and this node's new entries look as if \
                     from the future to them and are refused"
                };
                warn!(
                    "this node's clock seems {} ({} organisations' entries agree): {consequence}. \
                     No peer is blamed and nothing is lost: sync fetches refused entries once \
                     the clocks agree. Fix the system clock (NTP).",
                    describe(offset),
                    status.witnesses.len(),
                );
                state.warned = Some(offset);
            }
            (Some(_), None) => {
                info!("this node's clock agrees with the organisations' entries again");
                state.warned = None;
            }
            _ => {}
        }
        status
    }
}

/// `-10800` as "3h 0m behind theirs", rounded down to the minute.
fn describe(offset_secs: i64) -> String {
    let magnitude = offset_secs.unsigned_abs();
    let direction = if offset_secs < 0 {
        "behind"
    } else {
        "ahead of"
    };
    format!(
        "{}h {}m {direction} theirs",
        magnitude / 3600,
        (magnitude % 3600) / 60
    )
}

#[cfg(test)]
mod tests {
    use threatmesh_protocol::testing::public as org;

    use super::*;

    const HOUR_MS: u64 = 3_600_000;

    #[test]
    fn a_skewed_clock_follows_its_offset_and_clones_share_it() {
        let clock = Clock::skewed(-(3 * HOUR_MS as i64));
        let copy = clock.clone();
        let system = super::super::ingest::now().0;
        assert!(copy.now().0 + 3 * HOUR_MS - 60_000 <= system);
        clock.set_offset_ms(0);
        assert!(copy.now().0 + 60_000 >= super::super::ingest::now().0);
    }

    #[test]
    fn one_organisation_alone_raises_nothing_two_do_and_a_fixed_clock_clears_it() {
        let clock = Clock::skewed(-(3 * HOUR_MS as i64));
        let watch = ClockWatch::new(clock.clone(), Duration::from_secs(300));
        let real = Timestamp(clock.now().0 + 3 * HOUR_MS);
        watch.sighted(org(1), real);
        assert_eq!(watch.status().suspected_offset_secs, None);
        watch.sighted(org(2), real);
        let status = watch.status();
        let offset = status.suspected_offset_secs.unwrap_or_default();
        assert!((-10_900..=-10_700).contains(&offset), "{status:?}");
        assert_eq!(status.witnesses.len(), 2);
        clock.set_offset_ms(0);
        assert_eq!(watch.status().suspected_offset_secs, None);
    }

    #[test]
    fn a_minority_of_skewed_organisations_is_theirs_not_ours() {
        let clock = Clock::system();
        let watch = ClockWatch::new(clock.clone(), Duration::from_secs(300));
        let now = clock.now();
        watch.sighted(org(1), Timestamp(now.0 + 3 * HOUR_MS));
        watch.sighted(org(2), Timestamp(now.0 + 3 * HOUR_MS));
        for n in 3..6 {
            watch.sighted(org(n), now);
        }
        assert_eq!(watch.status().suspected_offset_secs, None);
        // Fresh gossip that looks hours old, from most organisations: ours is ahead.
        for n in 3..6 {
            watch.sighted(org(n), Timestamp(now.0 - 3 * HOUR_MS));
        }
        let status = watch.status();
        assert!(
            status.suspected_offset_secs.unwrap_or_default() > 10_000,
            "{status:?}"
        );
        // The clock is set back three hours: the same sightings now agree with it.
        clock.set_offset_ms(-(3 * HOUR_MS as i64));
        assert_eq!(watch.status().suspected_offset_secs, None);
        watch.retain(|member| *member == org(1));
        assert_eq!(watch.status().organisations_seen, 1);
    }
}
