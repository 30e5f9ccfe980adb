//! The simulation's scenarios: idle, propagation, catch-up and partition.
//!
//! Each builds a fresh federation, waits until every node holds its low mark of links,
//! lets it settle, then measures. Times are read from the nodes themselves: an entry's
//! `created` time (the publisher's clock, set when it signs), the time each node stored it
//! (its added-time index), and the time each node verified it from gossip and forwarded it
//! (its relay log). All are this machine's clock in milliseconds, divided by the time
//! scale. Nothing waits forever: a node that never gets an entry is reported as such.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use threatmesh_node::store::AddedStart;
use threatmesh_protocol::bundle::{Distribution, Tlp};
use threatmesh_protocol::item::{Indicator, Item};
use threatmesh_protocol::{Hash, Kind, Timestamp, Value};
use tokio::time::Instant;

use super::world::World;
use super::{Scenario, Setup, SimulateArgs, observe};
use crate::bench::Random;

mod faults;
mod propagation;

use faults::{catch_up, partition};
use propagation::propagation;

/// Wall-clock seconds allowed for the mesh to form, per 100 members, times the scale.
const MESH_SECONDS_PER_100: f64 = 30.0;
/// Simulated seconds an entry may take to reach every node before the run gives up on it.
const DELIVERY_SECONDS: f64 = 120.0;
/// How often progress is polled, in wall-clock milliseconds.
const POLL_MS: u64 = 200;

/// What a scenario measured.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum Outcome {
    Idle(Idle),
    Propagation(Propagation),
    CatchUp(CatchUp),
    Partition(Partition),
}

/// How the mesh came up.
#[derive(Debug, Serialize)]
pub(crate) struct Mesh {
    /// Simulated seconds from start until every node held its low mark of links.
    pub(crate) seconds: f64,
    /// Nodes still below their low mark when the wait ended (empty when all made it).
    pub(crate) below_low: Vec<usize>,
    /// Links per node when measuring began: min, median, max.
    pub(crate) links: [usize; 3],
    /// Gossip mesh peers per node when measuring began: min, median, max.
    pub(crate) mesh_peers: [usize; 3],
    /// The links held when measuring began, (lower node index, higher), sorted. Only
    /// `--seeded-links` makes the seed fix it: otherwise each node's random choices are
    /// seeded, but which dial lands first and which surplus link is pruned depend on
    /// timing (two 300-member runs with one seed shared 121 of about 2,200 links, what
    /// chance gives).
    pub(crate) topology: Vec<(usize, usize)>,
}

/// How the machine kept up over a phase.
#[derive(Debug, Serialize)]
pub(crate) struct Keeping {
    /// Share of the machine's cores the process kept busy (1.0: all of them), on average.
    pub(crate) cpu_busy: f64,
    /// Pieces of bytes the links handed over per bucket of
    /// `link::LATENESS_BUCKETS_MICROS` of lateness past the model's time (wall clock; the
    /// last bucket is anything later).
    pub(crate) late_pieces: Vec<u64>,
    /// The 99th percentile of that lateness, in simulated milliseconds (the bucket's upper
    /// bound, divided by the time scale); `None` past the last bound or with no pieces.
    pub(crate) late_p99_ms: Option<f64>,
    /// Entries the nodes checked and stored, and the mean time each took, in wall-clock
    /// milliseconds (not divided by the time scale: what a member's own machine spends).
    pub(crate) ingested: u64,
    pub(crate) ingest_ms: f64,
}

/// What [`keeping`] compares: CPU, lateness and ingest counters at a moment.
struct Gauge {
    cpu: f64,
    wall: Instant,
    late: Vec<u64>,
    ingested: u64,
    ingest_micros: u64,
}

fn gauge(world: &World) -> Gauge {
    let (mut ingested, mut ingest_micros) = (0, 0);
    for (_, client) in world.running() {
        let metrics = client.metrics();
        ingested += metrics.ingest_buckets.iter().sum::<u64>();
        ingest_micros += metrics.ingest_micros_sum;
    }
    Gauge {
        cpu: cpu_seconds(),
        wall: Instant::now(),
        late: world.links.lateness(),
        ingested,
        ingest_micros,
    }
}

/// How the machine kept up since `start` (a node restarted meanwhile counts from zero).
fn keeping(world: &World, setup: &Setup, start: &Gauge) -> Keeping {
    let end = gauge(world);
    let late: Vec<u64> = end
        .late
        .iter()
        .zip(start.late.iter().chain(std::iter::repeat(&0)))
        .map(|(end, start)| end.saturating_sub(*start))
        .collect();
    let total: u64 = late.iter().sum();
    let mut seen = 0;
    let mut p99 = None;
    for (bucket, count) in late.iter().enumerate() {
        seen += count;
        if total > 0 && seen as f64 >= total as f64 * 0.99 {
            p99 = Some(bucket);
            break;
        }
    }
    let ingested = end.ingested.saturating_sub(start.ingested);
    Keeping {
        cpu_busy: busy(start.cpu, start.wall),
        late_p99_ms: p99.and_then(|bucket| {
            super::link::LATENESS_BUCKETS_MICROS
                .get(bucket)
                .map(|micros| *micros as f64 / 1000.0 / setup.scale)
        }),
        late_pieces: late,
        ingested,
        ingest_ms: end.ingest_micros.saturating_sub(start.ingest_micros) as f64
            / 1000.0
            / ingested.max(1) as f64,
    }
}

/// Per node, at rest.
#[derive(Debug, Serialize)]
pub(crate) struct Idle {
    pub(crate) nodes: usize,
    pub(crate) mesh: Mesh,
    pub(crate) window_seconds: f64,
    /// Bytes each node received per simulated second.
    pub(crate) received_per_sec: Vec<f64>,
    /// Bytes each node sent per simulated second.
    pub(crate) sent_per_sec: Vec<f64>,
    /// CPU of the whole process per node, in milliseconds per simulated second.
    pub(crate) cpu_ms_per_sec_per_node: f64,
    pub(crate) keeping: Keeping,
    pub(crate) resident_mib: f64,
}

/// One entry's spread.
#[derive(Debug, Serialize)]
pub(crate) struct Spread {
    pub(crate) entry: String,
    pub(crate) publisher: usize,
    /// Milliseconds from creation to stored on the last node (simulated time); `None` if
    /// some node never stored it.
    pub(crate) to_every_ms: Option<u64>,
    /// Milliseconds from creation to verified (and forwarded) on the last node whose
    /// gossip path back to the publisher is known (see `hops`).
    pub(crate) verified_every_ms: Option<u64>,
    /// The model's largest one-way latency from the publisher to any member, ms.
    pub(crate) bound_ms: u64,
    /// The physical limit: the same at fibre speed along the great circle, ms.
    pub(crate) physical_ms: u64,
    /// Nodes that never stored it.
    pub(crate) missing: Vec<usize>,
    /// Along the path each member's first copy took, the model's one-way latencies summed:
    /// the largest such sum over the members (ms), and the most hops of any path. With
    /// each hop's check time added (most hops × check), a bound on what the entry would
    /// take to reach every member if each had its own CPU and the paths were the same.
    /// `None` unless every member's path is known.
    pub(crate) path_every: Option<(u64, u32)>,
    /// Nodes that stored it without verifying it from gossip first: they got it by sync.
    pub(crate) by_sync: usize,
    /// Nodes that got it by gossip from a peer whose own copy came by sync (or whose path
    /// is otherwise not known): no hop count.
    pub(crate) path_unknown: usize,
    /// Hops of the first delivery at each node whose gossip path back to the publisher is
    /// known (1: straight from the publisher).
    pub(crate) hops: Vec<u32>,
    /// Per node (publisher excluded), ms from creation to stored.
    pub(crate) to_each_ms: Vec<u64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Propagation {
    pub(crate) nodes: usize,
    pub(crate) mesh: Mesh,
    pub(crate) indicators_per_entry: u32,
    pub(crate) entry_bytes: u64,
    /// Simulated seconds between two publications.
    pub(crate) interval_seconds: f64,
    /// Per node, the mean time from creation to stored over the entries it did not
    /// publish, ms (simulated); `None` for a node that stored none of them.
    pub(crate) mean_arrival_ms: Vec<Option<f64>>,
    pub(crate) spreads: Vec<Spread>,
    /// Simulated seconds from the first publication until the last entry was everywhere
    /// (or the wait ended).
    pub(crate) seconds: f64,
    /// Per node over that time: bytes received and sent per simulated second.
    pub(crate) received_per_sec: Vec<f64>,
    pub(crate) sent_per_sec: Vec<f64>,
    /// Per node: bytes received over gossip (everything but sync frames) per entry, in
    /// entry sizes: how many copies of each entry a node took in, overheads included.
    pub(crate) copies_per_entry: Vec<f64>,
    /// Per node: copies of an entry gossipsub received after the first and dropped as
    /// already seen, averaged over the entries.
    pub(crate) duplicates_per_entry: Vec<f64>,
    /// Whether gossipsub's duplicate log was seen at all (a libp2p that logs it otherwise
    /// would leave every count at 0, which must not read as "no duplicates").
    pub(crate) duplicates_measured: bool,
    pub(crate) keeping: Keeping,
    pub(crate) resident_mib: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct CatchUp {
    pub(crate) nodes: usize,
    pub(crate) mesh: Mesh,
    pub(crate) away: usize,
    pub(crate) away_country: String,
    pub(crate) entries: usize,
    pub(crate) indicators_per_entry: u32,
    /// Simulated seconds from its restart until it held every entry; `None`: it did not.
    pub(crate) seconds: Option<f64>,
    pub(crate) missing: usize,
    /// Entries it lacked when it came back (all of them, or it was not really away).
    pub(crate) lacked_at_restart: usize,
    /// Bytes it received from its restart until done.
    pub(crate) bytes_received: u64,
    pub(crate) entry_bytes: u64,
    /// (node, entries it lacks) among the others when the away node came back: none if
    /// the federation had spread everything.
    pub(crate) others_missing: Vec<(usize, usize)>,
    pub(crate) keeping: Keeping,
}

#[derive(Debug, Serialize)]
pub(crate) struct Partition {
    pub(crate) nodes: usize,
    pub(crate) mesh: Mesh,
    pub(crate) cut: Vec<String>,
    /// Members on the cut side and on the other.
    pub(crate) sides: [usize; 2],
    pub(crate) entries: usize,
    /// Simulated seconds from the heal until every node held every entry; `None`: not.
    pub(crate) heal_seconds: Option<f64>,
    /// (node, entries it lacks) when the wait ended.
    pub(crate) missing: Vec<(usize, usize)>,
    /// Copies of an entry from one side held on the other side just before the heal:
    /// 0 if the cut held.
    pub(crate) crossed_before_heal: usize,
    pub(crate) keeping: Keeping,
}

pub(crate) async fn run(scenario: Scenario, args: &SimulateArgs, setup: &Setup) -> Result<Outcome> {
    let _ = observe::take();
    let started = Instant::now();
    let mut world = super::build(args, setup)?;
    eprintln!(
        "  {} nodes started in {:.0} s (wall clock); waiting for the mesh",
        world.len(),
        started.elapsed().as_secs_f64()
    );
    let mesh = wait_for_mesh(&world, setup).await?;
    eprintln!(
        "  mesh up after {:.1} simulated seconds; settling for {} more",
        mesh.seconds, args.settle_seconds
    );
    sleep(setup, args.settle_seconds as f64).await;
    let mesh = Mesh {
        links: spread_of(links(&world).await),
        mesh_peers: spread_of(mesh_peers(&world).await),
        topology: topology(&world).await,
        ..mesh
    };
    let outcome = match scenario {
        Scenario::Idle => Outcome::Idle(idle(&world, args, setup, mesh).await),
        Scenario::Propagation => {
            Outcome::Propagation(propagation(&world, args, setup, mesh).await?)
        }
        Scenario::CatchUp => Outcome::CatchUp(catch_up(&mut world, args, setup, mesh).await?),
        Scenario::Partition => Outcome::Partition(partition(&world, args, setup, mesh).await?),
        Scenario::All => bail!("`all` is run one scenario at a time"),
    };
    drop(world);
    Ok(outcome)
}

/// Sleeps `seconds` of simulated time.
async fn sleep(setup: &Setup, seconds: f64) {
    tokio::time::sleep(Duration::from_secs_f64(seconds * setup.scale)).await;
}

/// Simulated seconds since `start`.
fn since(setup: &Setup, start: Instant) -> f64 {
    start.elapsed().as_secs_f64() / setup.scale
}

async fn links(world: &World) -> Vec<usize> {
    let mut counts = Vec::new();
    for (_, client) in world.running() {
        counts.push(client.peers().await.map_or(0, |peers| peers.len()));
    }
    counts
}

/// Every link held when measuring began, as (lower index, higher index), sorted.
async fn topology(world: &World) -> Vec<(usize, usize)> {
    let mut edges = std::collections::BTreeSet::new();
    for (index, client) in world.running() {
        for peer in client.peers().await.unwrap_or_default() {
            if let Some(other) = world.by_peer.get(&peer) {
                edges.insert((index.min(*other), index.max(*other)));
            }
        }
    }
    edges.into_iter().collect()
}

async fn mesh_peers(world: &World) -> Vec<usize> {
    let mut counts = Vec::new();
    for (_, client) in world.running() {
        counts.push(client.mesh_peers().await.map_or(0, |peers| peers.len()));
    }
    counts
}

fn spread_of(mut values: Vec<usize>) -> [usize; 3] {
    values.sort_unstable();
    [
        values.first().copied().unwrap_or(0),
        values.get(values.len() / 2).copied().unwrap_or(0),
        values.last().copied().unwrap_or(0),
    ]
}

/// Waits until every running node holds at least its low mark of links and one gossip mesh
/// peer, or the time allowed ends (then the report names the nodes below).
async fn wait_for_mesh(world: &World, setup: &Setup) -> Result<Mesh> {
    let start = Instant::now();
    let allowed = Duration::from_secs_f64(
        MESH_SECONDS_PER_100 * (setup.len() as f64 / 100.0).max(1.0) * setup.scale,
    );
    loop {
        let mut below = Vec::new();
        for (index, client) in world.running() {
            let peers = client.peers().await.map_or(0, |peers| peers.len());
            let mesh = client.mesh_peers().await.map_or(0, |peers| peers.len());
            let low = client
                .peers_low()
                .min(world.len() - 1)
                .min(world.seeded_degree(index).unwrap_or(usize::MAX));
            if peers < low || mesh == 0 {
                below.push(index);
            }
        }
        if below.is_empty() || start.elapsed() >= allowed {
            if !below.is_empty() {
                eprintln!(
                    "warning: {} of {} nodes still below their low mark of links after {:.0} s",
                    below.len(),
                    world.len(),
                    since(setup, start)
                );
            }
            return Ok(Mesh {
                seconds: since(setup, start),
                below_low: below,
                links: [0; 3],
                mesh_peers: [0; 3],
                topology: Vec::new(),
            });
        }
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
}

/// Bytes received and sent by every node (0 for a node not running).
fn traffic(world: &World) -> Vec<(u64, u64, u64)> {
    (0..world.len())
        .map(|index| {
            world.client(index).map_or((0, 0, 0), |client| {
                let metrics = client.metrics();
                (
                    metrics.transport_bytes_received,
                    metrics.transport_bytes_sent,
                    metrics.sync_bytes_received,
                )
            })
        })
        .collect()
}

/// CPU time of this process, in seconds.
fn cpu_seconds() -> f64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let ticks = *TICKS.get_or_init(|| crate::bench::idle::getconf("CLK_TCK", 100));
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The command name (field 2) may hold spaces: count fields after its closing paren.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| -> u64 {
        fields
            .get(n - 3)
            .and_then(|text| text.parse().ok())
            .unwrap_or(0)
    };
    (field(14) + field(15)) as f64 / ticks as f64
}

/// The share of the machine's cores this process kept busy since `(cpu, wall)`.
fn busy(cpu_start: f64, wall_start: Instant) -> f64 {
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    (cpu_seconds() - cpu_start) / wall_start.elapsed().as_secs_f64().max(1e-9) / cores
}

/// Peak resident memory of this process, in MiB.
pub(crate) fn resident_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

async fn idle(world: &World, args: &SimulateArgs, setup: &Setup, mesh: Mesh) -> Idle {
    let (before, start) = (traffic(world), gauge(world));
    sleep(setup, args.window_seconds as f64).await;
    let after = traffic(world);
    let seconds = since(setup, start.wall);
    let cpu_used = cpu_seconds() - start.cpu;
    let keeping = keeping(world, setup, &start);
    let per_sec = |pick: fn(&(u64, u64, u64)) -> u64| -> Vec<f64> {
        before
            .iter()
            .zip(&after)
            .map(|(start, end)| pick(end).saturating_sub(pick(start)) as f64 / seconds)
            .collect()
    };
    Idle {
        nodes: world.len(),
        mesh,
        window_seconds: seconds,
        received_per_sec: per_sec(|reading| reading.0),
        sent_per_sec: per_sec(|reading| reading.1),
        cpu_ms_per_sec_per_node: cpu_used * 1000.0 / seconds / world.len() as f64,
        keeping,
        resident_mib: resident_mib(),
    }
}

/// `count` ipv4 indicators no other entry number holds.
fn indicators(number: usize, count: u32) -> Result<Vec<Item>> {
    let first = u32::try_from(number)?.saturating_mul(count);
    (first..first.saturating_add(count))
        .map(|n| {
            let [a, b, c, d] = n.to_be_bytes();
            let value = Value::parse(Kind::Ipv4, &format!("{}.{b}.{c}.{d}", 10 + a % 200))
                .context("building an indicator")?;
            Ok(Item::Indicator(Indicator::new(
                value,
                Timestamp(1_700_000_000_000),
            )))
        })
        .collect()
}

/// Publishes entry `number` from node `publisher`; returns the entry ids.
async fn publish(world: &World, publisher: usize, number: usize, count: u32) -> Result<Vec<Hash>> {
    world
        .publisher(publisher)
        .with_context(|| format!("node {publisher} is not running"))?
        .publish(
            Tlp::Green,
            Distribution::Federation,
            indicators(number, count)?,
        )
        .await
        .with_context(|| format!("publishing from node {publisher}"))
}

/// How many of `ids` node `index` lacks.
fn lacking(world: &World, index: usize, ids: &[Hash]) -> usize {
    world.stores.get(index).map_or(ids.len(), |store| {
        ids.iter()
            .filter(|id| !store.contains(id).unwrap_or(false))
            .count()
    })
}

/// Waits (at most `allowed` simulated seconds) until every node of `nodes` holds every id;
/// returns the simulated seconds waited and whether they all did.
async fn wait_held(
    world: &World,
    setup: &Setup,
    nodes: &[usize],
    ids: &[Hash],
    allowed: f64,
) -> (f64, bool) {
    let start = Instant::now();
    let mut pending: Vec<usize> = nodes.to_vec();
    loop {
        pending.retain(|node| lacking(world, *node, ids) > 0);
        if pending.is_empty() {
            return (since(setup, start), true);
        }
        if since(setup, start) >= allowed {
            return (since(setup, start), false);
        }
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}
