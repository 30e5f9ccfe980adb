//! The console's memory of the last hour: what the node's own metrics and store said every
//! [`SAMPLE_EVERY`], for the Activity page's charts, and when each peer connected and
//! left, for its connection history and the Overview's "last heard from".
//!
//! A background task ([`keep_sampling`]) takes the samples; pages only read them. Every
//! collection here is bounded: [`POINTS`] samples, [`MAX_EVENTS`] connection events, and
//! one "last connected" time per peer the node has been connected to (peers are certified
//! nodes of the charter, so their number is the federation's size).
//!
//! Propagation is measured as the node sees it: for each entry of another node accepted in
//! a sample's interval, the time from its creation (the author's clock) to its arrival
//! here. The median and the slowest are kept; clock skew between organisations shows in
//! them as it does in the node's clock warning.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use libp2p::PeerId;
use threatmesh_protocol::Timestamp;

use crate::store::{AddedStart, Store};

/// How often a sample is taken.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(15);

/// Samples kept: one hour.
pub(crate) const POINTS: usize = 240;

/// Connection events kept.
pub(crate) const MAX_EVENTS: usize = 500;

/// Most rows of the added-time index read in one sample: the chart of a flood is drawn
/// from the first entries of each interval, the rest skipped, rather than holding the
/// node up.
const ROWS_PER_SAMPLE: usize = 20_000;

/// One interval's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Point {
    /// When the interval ended (ms since the epoch).
    pub(crate) at: Timestamp,
    /// Entries accepted in it (by gossip or sync).
    pub(crate) accepted: u64,
    /// Entries received in sync answers.
    pub(crate) fetched: u64,
    /// Messages refused.
    pub(crate) rejected: u64,
    /// Median time from creation to arrival here of other nodes' entries, in ms.
    pub(crate) median_delay_ms: Option<u64>,
    /// The slowest of them, in ms.
    pub(crate) max_delay_ms: Option<u64>,
}

/// A peer connecting or leaving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConnectionEvent {
    pub(crate) at: Timestamp,
    pub(crate) peer: PeerId,
    pub(crate) connected: bool,
}

#[derive(Debug, Default)]
struct Memory {
    points: VecDeque<Point>,
    events: VecDeque<ConnectionEvent>,
    connected: HashSet<PeerId>,
    last_connected: HashMap<PeerId, Timestamp>,
    /// The metrics' totals at the last sample, to take differences from.
    totals: Option<(u64, u64, u64)>,
    /// Where the added-time index was read up to.
    cursor: Option<Vec<u8>>,
}

/// The console's last hour.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    memory: Mutex<Memory>,
}

impl Activity {
    fn memory(&self) -> MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The samples, oldest first.
    pub(crate) fn points(&self) -> Vec<Point> {
        self.memory().points.iter().copied().collect()
    }

    /// Connection events, newest first.
    pub(crate) fn events(&self) -> Vec<ConnectionEvent> {
        self.memory().events.iter().rev().cloned().collect()
    }

    /// When `peer` was last seen connected (now, if it is).
    pub(crate) fn last_connected(&self, peer: &PeerId) -> Option<Timestamp> {
        self.memory().last_connected.get(peer).copied()
    }

    /// Records the peers connected at `now`: who came and who left since the last call.
    pub(crate) fn connected(&self, peers: &[PeerId], now: Timestamp) {
        let mut memory = self.memory();
        let current: HashSet<PeerId> = peers.iter().copied().collect();
        let mut changes: Vec<ConnectionEvent> = current
            .difference(&memory.connected)
            .map(|peer| ConnectionEvent {
                at: now,
                peer: *peer,
                connected: true,
            })
            .chain(
                memory
                    .connected
                    .difference(&current)
                    .map(|peer| ConnectionEvent {
                        at: now,
                        peer: *peer,
                        connected: false,
                    }),
            )
            .collect();
        changes.sort_by_key(|event| (event.connected, event.peer));
        for event in changes {
            if memory.events.len() >= MAX_EVENTS {
                memory.events.pop_front();
            }
            memory.events.push_back(event);
        }
        for peer in &current {
            memory.last_connected.insert(*peer, now);
        }
        // A peer that left is remembered as last connected at the previous sample.
        memory.connected = current;
    }

    /// Adds a sample: the metrics' totals now (accepted, fetched, rejected) and the
    /// creation-to-arrival delays of entries accepted since the last sample.
    pub(crate) fn sample(&self, at: Timestamp, totals: (u64, u64, u64), mut delays: Vec<u64>) {
        let mut memory = self.memory();
        let (accepted, fetched, rejected) = match memory.totals {
            Some((a, f, r)) => (
                totals.0.saturating_sub(a),
                totals.1.saturating_sub(f),
                totals.2.saturating_sub(r),
            ),
            // The first sample only sets the baseline: what came before the console
            // started is not this interval's.
            None => (0, 0, 0),
        };
        memory.totals = Some(totals);
        delays.sort_unstable();
        let point = Point {
            at,
            accepted,
            fetched,
            rejected,
            median_delay_ms: delays.get(delays.len() / 2).copied(),
            max_delay_ms: delays.last().copied(),
        };
        if memory.points.len() >= POINTS {
            memory.points.pop_front();
        }
        memory.points.push_back(point);
    }

    /// The creation-to-arrival delays (ms) of entries by nodes other than `own` that the
    /// store accepted since the last call, reading at most [`ROWS_PER_SAMPLE`] rows.
    /// `now` is the time of the first call: what the store held before is history, not
    /// this hour's.
    pub(crate) fn new_delays(
        &self,
        store: &Store,
        own: &threatmesh_protocol::PublicKey,
        now: Timestamp,
    ) -> Result<Vec<u64>, crate::store::StoreError> {
        let cursor = self.memory().cursor.clone();
        let start = match &cursor {
            Some(key) => AddedStart::Following(key),
            None => AddedStart::After(Timestamp(
                now.0.saturating_sub(SAMPLE_EVERY.as_millis() as u64),
            )),
        };
        let rows = store.added_headers(start, ROWS_PER_SAMPLE)?;
        let delays = rows
            .iter()
            .filter(|row| row.header.author != *own)
            .map(|row| row.added.0.saturating_sub(row.header.created.0))
            .collect();
        if rows.len() == ROWS_PER_SAMPLE {
            // A flood: the rest of this interval is skipped, so the next sample charts the
            // next interval, not this one's backlog.
            let newest = store.recent_ids(None, 1)?;
            self.memory().cursor = newest.into_iter().next().map(|(key, _, _)| key);
        } else if let Some(last) = rows.last() {
            self.memory().cursor = Some(last.key.clone());
        }
        Ok(delays)
    }
}

/// Takes a sample every [`SAMPLE_EVERY`] until the runtime stops.
pub(crate) async fn keep_sampling(state: crate::api::ApiState) {
    let mut ticks = tokio::time::interval(SAMPLE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let activity = std::sync::Arc::clone(&state.console.activity);
    loop {
        ticks.tick().await;
        let now = state.client.now();
        match state.client.peers().await {
            Ok(peers) => activity.connected(&peers, now),
            // The node is stopping.
            Err(_) => return,
        }
        let metrics = state.client.metrics();
        let totals = (
            metrics.accepted,
            metrics.fetched_entries,
            metrics.rejected_total(),
        );
        let (store, own, reader) = (
            state.store.clone(),
            state.client.node_key(),
            std::sync::Arc::clone(&activity),
        );
        // Blocking threads start outside any span: carry the node's along.
        let span = tracing::Span::current();
        let delays = tokio::task::spawn_blocking(move || {
            span.in_scope(|| reader.new_delays(&store, &own, now))
        })
        .await;
        let delays = match delays {
            Ok(Ok(delays)) => delays,
            Ok(Err(error)) => {
                tracing::warn!(%error, "console: reading recent entries for the activity chart");
                Vec::new()
            }
            Err(error) => {
                tracing::warn!(%error, "console: the activity sample failed");
                Vec::new()
            }
        };
        activity.sample(now, totals, delays);
    }
}

/// One line of a chart: its name (for the legend) and a value per sample.
#[derive(Debug)]
pub(crate) struct Series<'a> {
    pub(crate) name: &'a str,
    pub(crate) values: Vec<Option<f64>>,
}

/// A line chart as inline SVG: the last hour on the x axis, `series` on a shared y axis
/// starting at 0, labelled with `unit`. Text is escaped by the caller's template, so only
/// numbers and fixed words are written here.
pub(crate) fn line_chart(id: &str, title: &str, unit: &str, series: &[Series<'_>]) -> String {
    const WIDTH: f64 = 720.0;
    const HEIGHT: f64 = 220.0;
    const LEFT: f64 = 56.0;
    const BOTTOM: f64 = 28.0;
    const TOP: f64 = 12.0;
    let plot_width = WIDTH - LEFT - 12.0;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let highest = series
        .iter()
        .flat_map(|line| line.values.iter().flatten())
        .fold(0.0_f64, |top, value| top.max(*value));
    let top = nice_ceiling(highest);
    let mut svg = String::new();
    // `write!` into a String cannot fail.
    let _ = write!(
        svg,
        r#"<svg id="{id}" class="chart" role="img" aria-labelledby="{id}-title" viewBox="0 0 {WIDTH} {HEIGHT}" xmlns="http://www.w3.org/2000/svg"><title id="{id}-title">{title}</title>"#
    );
    for step in 0..=4 {
        let value = top * f64::from(step) / 4.0;
        let y = TOP + plot_height - plot_height * f64::from(step) / 4.0;
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text class="axis" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            WIDTH - 12.0,
            LEFT - 6.0,
            y + 4.0,
            short_number(value)
        );
    }
    let _ = write!(
        svg,
        r#"<text class="axis" x="{LEFT}" y="{}">-60 min</text><text class="axis" x="{}" y="{}" text-anchor="end">now</text><text class="axis" x="4" y="{}">{unit}</text>"#,
        HEIGHT - 8.0,
        WIDTH - 12.0,
        HEIGHT - 8.0,
        TOP + 4.0,
    );
    for (index, line) in series.iter().enumerate() {
        let count = line.values.len();
        let mut path = String::new();
        let mut pen_down = false;
        for (at, value) in line.values.iter().enumerate() {
            let Some(value) = value else {
                pen_down = false;
                continue;
            };
            // The newest sample is at the right edge; the hour runs leftwards from it.
            let x = LEFT + plot_width * (1.0 - (count - 1 - at) as f64 / (POINTS - 1) as f64);
            let y = TOP + plot_height - plot_height * (value / top);
            let _ = write!(path, "{}{x:.1},{y:.1} ", if pen_down { 'L' } else { 'M' });
            pen_down = true;
        }
        let _ = write!(
            svg,
            r#"<path class="series series-{index}" d="{}"/><text class="legend series-{index}" x="{}" y="{}">{}</text>"#,
            path.trim_end(),
            LEFT + 8.0 + 160.0 * index as f64,
            TOP + 12.0,
            line.name
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The smallest of 1, 2 or 5 times a power of ten at or above `value` (at least 1).
fn nice_ceiling(value: f64) -> f64 {
    if value <= 1.0 {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|step| step * power)
        .find(|ceiling| *ceiling >= value)
        .unwrap_or(10.0 * power)
}

/// `value` in a few characters: 1500 -> "1.5k".
fn short_number(value: f64) -> String {
    if value >= 1_000_000.0 {
        format!("{:.1}M", value / 1_000_000.0)
    } else if value >= 1_000.0 {
        format!("{:.1}k", value / 1_000.0)
    } else if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn peer(index: u8) -> PeerId {
        libp2p::identity::Keypair::ed25519_from_bytes([index; 32])
            .unwrap()
            .public()
            .to_peer_id()
    }

    #[test]
    fn samples_are_differences_of_totals_and_bounded() {
        let activity = Activity::default();
        activity.sample(Timestamp(1), (100, 10, 1), Vec::new());
        activity.sample(Timestamp(2), (130, 15, 1), vec![300, 100, 200]);
        let points = activity.points();
        assert_eq!(points[0].accepted, 0, "the first sample is the baseline");
        assert_eq!(points[1].accepted, 30);
        assert_eq!(points[1].fetched, 5);
        assert_eq!(points[1].median_delay_ms, Some(200));
        assert_eq!(points[1].max_delay_ms, Some(300));
        for at in 0..POINTS as u64 * 2 {
            activity.sample(Timestamp(at), (0, 0, 0), Vec::new());
        }
        assert_eq!(activity.points().len(), POINTS);
    }

    #[test]
    fn connections_and_departures_are_recorded_and_bounded() {
        let activity = Activity::default();
        activity.connected(&[peer(1), peer(2)], Timestamp(10));
        activity.connected(&[peer(2)], Timestamp(20));
        let events = activity.events();
        assert_eq!(
            events[0],
            ConnectionEvent {
                at: Timestamp(20),
                peer: peer(1),
                connected: false
            }
        );
        assert_eq!(events.len(), 3);
        assert_eq!(activity.last_connected(&peer(1)), Some(Timestamp(10)));
        assert_eq!(activity.last_connected(&peer(2)), Some(Timestamp(20)));
        for at in 0..MAX_EVENTS as u64 {
            activity.connected(&[], Timestamp(at * 2));
            activity.connected(&[peer(3)], Timestamp(at * 2 + 1));
        }
        assert_eq!(activity.events().len(), MAX_EVENTS);
    }

    #[test]
    fn a_chart_draws_each_series_and_gaps() {
        let svg = line_chart(
            "c",
            "Title",
            "entries",
            &[Series {
                name: "accepted",
                values: vec![Some(1.0), None, Some(3.0), Some(7.0)],
            }],
        );
        assert!(svg.starts_with("<svg id=\"c\""), "{svg}");
        // Two runs: one point, then two joined.
        assert_eq!(svg.matches('M').count(), 2, "{svg}");
        assert_eq!(
            svg.matches(" L").count() + svg.matches("\"L").count(),
            1,
            "{svg}"
        );
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(120.0), 200.0);
        assert_eq!(short_number(1500.0), "1.5k");
    }
}
