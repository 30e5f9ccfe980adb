//! `threatmesh-testnet simulate`: a federation of hundreds of members around the world,
//! in one process, with the node's own code and the latency of real distances.
//!
//! Each member sits in a country's capital ([`geo`]); the one-way latency between two
//! members is the great-circle distance at the speed of light in fibre, times a
//! route-inflation factor, plus a last-mile delay, both from a published measurement.
//! Nodes run the node's network, sync, validation and store ([`world`]) over in-memory
//! connections that add that latency to every byte ([`link`]); what each node logs about
//! the entries it forwards gives the path each entry took ([`observe`]).
//!
//! A thousand nodes on two cores cannot all run in real time when every one of them
//! checks and stores each entry of 1,000 indicators. `--time-scale K` runs the world K
//! times slower: every latency is multiplied by K, and so is every timer the node's
//! configuration sets (heartbeat, which gossipsub's other timings and ping follow; sync
//! interval, peer hold and rotation, redial, request and handshake timeouts, ban); every
//! time measured is divided by K. What K does not stretch: the node's fixed intervals
//! (maintenance every 500 ms, the idle connection timeout), rate limits (K times looser)
//! and, above all, the CPU: a member's checks of an entry count K times less than on its
//! own machine. The report gives that check time unscaled, how late the links delivered
//! bytes, and how busy the CPU was, so a reader can tell latency from queueing. One limit
//! K cannot pass: libp2p gives a substream 10 s of wall-clock time to negotiate, so the
//! longest stretched round trip must stay under that (`check_round_trip`).

mod geo;
mod link;
mod observe;
mod report;
mod scenarios;
mod world;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::Args;

use self::geo::{Capital, LatencyModel};
use self::link::Links;
use self::world::World;

/// Route inflation: Bozkurt et al., "Why Is the Internet so Slow?!", PAM 2017, put the
/// median minimum ping time between PlanetLab nodes and web servers at about 3.2× the
/// round trip at the speed of light in vacuum along the great circle (our reading of
/// their results); fibre carries light at 2/3 c, so against fibre speed that is
/// 3.2 × 2/3 ≈ 2.1.
pub(crate) const DEFAULT_INFLATION: f64 = 2.1;
/// Last-mile delay added to each one-way latency, in milliseconds (the report's README
/// says where it comes from).
pub(crate) const DEFAULT_LAST_MILE_MS: u64 = 5;
/// Members when `--nodes` is not given.
const DEFAULT_NODES: usize = 100;
/// The most members one simulation runs: about 9 MiB each, and a charter holds 2,048.
const MAX_NODES: usize = 2_000;
const MAX_ENTRIES: usize = 10_000;
const MAX_TIME_SCALE: f64 = 100.0;
/// The longest simulated wait any flag may ask for.
const MAX_SECONDS: f64 = 3_600.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Scenario {
    /// Nothing published: bytes and CPU per node at rest.
    Idle,
    /// Entries from random members; time to every member against the latency bound.
    Propagation,
    /// A member away while others publish, then back: time and bytes to catch up.
    CatchUp,
    /// Continents cut apart while both sides publish, then healed: nothing may be lost.
    Partition,
    /// Every scenario above, in order, each on a fresh federation.
    All,
}

impl Scenario {
    const EACH: [Scenario; 4] = [
        Scenario::Idle,
        Scenario::Propagation,
        Scenario::CatchUp,
        Scenario::Partition,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Scenario::Idle => "idle",
            Scenario::Propagation => "propagation",
            Scenario::CatchUp => "catch-up",
            Scenario::Partition => "partition",
            Scenario::All => "all",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub(crate) struct SimulateArgs {
    /// What to measure.
    #[arg(long, value_enum, default_value = "propagation")]
    scenario: Scenario,
    /// Members, one node each; a list (`100,300,1000`) runs the scenario once per size
    /// (default 100).
    #[arg(long, value_delimiter = ',')]
    nodes: Option<Vec<usize>>,
    /// Seed for the placement of members, their keys and latencies, the nodes' random
    /// choices and the publishers. The links the nodes end up holding are fixed by it only
    /// with `--seeded-links`; otherwise they depend on which dial lands first.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run the world this many times slower than real time (timers and latencies times
    /// K, measured times divided by K), so the CPU counts less against the protocol.
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// Entries to publish (propagation; catch-up and partition publish this many while
    /// the node is away or the continents apart).
    #[arg(long, default_value_t = 20)]
    entries: usize,
    /// Indicators per entry.
    #[arg(long, default_value_t = 1_000)]
    indicators: u32,
    /// Simulated seconds between two publications.
    #[arg(long, default_value_t = 2.0)]
    interval_seconds: f64,
    /// Route-inflation factor over the great-circle distance at fibre speed.
    #[arg(long, default_value_t = DEFAULT_INFLATION)]
    inflation: f64,
    /// Fixed delay added to every one-way latency, in milliseconds.
    #[arg(long, default_value_t = DEFAULT_LAST_MILE_MS)]
    last_mile_ms: u64,
    /// Give each node a seeded set of members to dial (about 14 links each, no rotation),
    /// so the links are the same from run to run; without it, nodes choose their peers as
    /// a real node does, and the links depend on which dial lands first.
    #[arg(long)]
    seeded_links: bool,
    /// Threads for the nodes' blocking work (checking and storing entries, reading sync
    /// answers), shared by every node; default: twice the cores. Few threads make the
    /// checks queue and run at full speed, first come first served, as on members' own
    /// machines; hundreds would share the cores among every node's checks at once, and
    /// each would take the whole burst's time.
    #[arg(long)]
    blocking_threads: Option<usize>,
    /// Bandwidth of each direction of each link, in megabits per second (default: not
    /// modelled).
    #[arg(long)]
    bandwidth_mbit: Option<f64>,
    /// Capitals with coordinates (CSV: code,country,capital,latitude,longitude,continent);
    /// default: the bundled dataset.
    #[arg(long)]
    capitals: Option<PathBuf>,
    /// Where the members are: one country code per line, or `CODE,COUNT`. Sets the number
    /// of members (give no `--nodes` with it). Default: spread over every capital.
    #[arg(long)]
    members: Option<PathBuf>,
    /// Simulated seconds the federation rests after it is up, before measuring.
    #[arg(long, default_value_t = 20)]
    settle_seconds: u64,
    /// idle: simulated seconds measured.
    #[arg(long, default_value_t = 40)]
    window_seconds: u64,
    /// partition: the continents cut off from the rest (GeoNames codes).
    #[arg(long, value_delimiter = ',', default_value = "NA,SA")]
    cut: Vec<String>,
    /// Work directory: the nodes' temporary stores go in `<dir>/simulation` (and are removed
    /// after each run), the report in `<dir>/report/simulation` unless `--report` says.
    #[arg(long, default_value = "testnet-work")]
    dir: PathBuf,
    /// Where to write the report (default: `<dir>/report/simulation`, beside `bench`'s).
    #[arg(long)]
    report: Option<PathBuf>,
}

/// The world one run builds: who is where, and how far apart.
#[derive(Debug)]
pub(crate) struct Setup {
    pub(crate) capitals: Vec<Capital>,
    /// Capital index of each member.
    pub(crate) placement: Vec<usize>,
    pub(crate) model: LatencyModel,
    pub(crate) scale: f64,
}

impl Setup {
    fn capital(&self, node: usize) -> Option<&Capital> {
        self.capitals.get(*self.placement.get(node)?)
    }

    /// The model's one-way latency from `a` to `b`, unscaled.
    pub(crate) fn one_way(&self, a: usize, b: usize) -> Duration {
        match (self.capital(a), self.capital(b)) {
            (Some(a), Some(b)) => self.model.one_way(a, b),
            _ => Duration::ZERO,
        }
    }

    /// The physical limit from `a` to `b`: fibre along the great circle.
    pub(crate) fn physical(&self, a: usize, b: usize) -> Duration {
        match (self.capital(a), self.capital(b)) {
            (Some(a), Some(b)) => LatencyModel::physical(a, b),
            _ => Duration::ZERO,
        }
    }

    /// The largest model latency and the largest physical limit from `publisher` to any
    /// member.
    pub(crate) fn bounds(&self, publisher: usize) -> (Duration, Duration) {
        (0..self.placement.len()).fold((Duration::ZERO, Duration::ZERO), |(model, physical), to| {
            (
                model.max(self.one_way(publisher, to)),
                physical.max(self.physical(publisher, to)),
            )
        })
    }

    pub(crate) fn continent(&self, node: usize) -> Option<geo::Continent> {
        self.capital(node).map(|capital| capital.continent)
    }

    pub(crate) fn len(&self) -> usize {
        self.placement.len()
    }
}

pub(crate) fn run(args: &SimulateArgs) -> Result<()> {
    check(args)?;
    observe::install();
    let capitals = match &args.capitals {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            geo::parse_capitals(&text, &path.display().to_string())?
        }
        None => geo::bundled(),
    };
    let model = LatencyModel::new(args.inflation, Duration::from_millis(args.last_mile_ms))?;
    let placements: Vec<Vec<usize>> = match &args.members {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            vec![geo::parse_members(
                &text,
                &path.display().to_string(),
                &capitals,
            )?]
        }
        None => args
            .nodes
            .clone()
            .unwrap_or_else(|| vec![DEFAULT_NODES])
            .iter()
            .map(|count| geo::spread(*count, &capitals, args.seed))
            .collect(),
    };
    if let Some(too_many) = placements
        .iter()
        .find(|placement| placement.len() > MAX_NODES)
    {
        bail!(
            "{} members: at most {MAX_NODES} fit one simulation",
            too_many.len()
        );
    }
    for placement in &placements {
        check_round_trip(&capitals, placement, &model, args.time_scale)?;
    }
    let scenarios: Vec<Scenario> = match args.scenario {
        Scenario::All => Scenario::EACH.to_vec(),
        one => vec![one],
    };
    let folder = args
        .report
        .clone()
        .unwrap_or_else(|| args.dir.join("report").join("simulation"));
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(args.blocking_threads.unwrap_or(2 * cores))
        .build()
        .context("starting the runtime")?;
    for scenario in scenarios {
        let mut idle = Vec::new();
        for placement in &placements {
            let setup = Setup {
                capitals: capitals.clone(),
                placement: placement.clone(),
                model,
                scale: args.time_scale,
            };
            eprintln!(
                "{}: {} members in {} countries, time scale {}",
                scenario.name(),
                setup.len(),
                distinct(&setup.placement),
                setup.scale
            );
            let outcome = runtime.block_on(scenarios::run(scenario, args, &setup))?;
            let summary = report::write(&folder, scenario, args, &setup, &outcome)?;
            println!("{summary}");
            if let scenarios::Outcome::Idle(measured) = outcome {
                idle.push(measured);
            }
        }
        if !idle.is_empty() {
            report::write_idle_scaling(&folder, &idle)?;
        }
    }
    report::write_index(&folder)?;
    println!("report in {}", folder.display());
    Ok(())
}

fn distinct(placement: &[usize]) -> usize {
    placement
        .iter()
        .collect::<std::collections::HashSet<_>>()
        .len()
}

/// Refuses settings that cannot make a meaningful run, naming the flag.
fn check(args: &SimulateArgs) -> Result<()> {
    if let Some(sizes) = &args.nodes {
        if args.members.is_some() {
            bail!("--members sets the members: give no --nodes with it");
        }
        if sizes.iter().any(|count| !(2..=MAX_NODES).contains(count)) {
            bail!("--nodes: every size must be from 2 to {MAX_NODES} members");
        }
    }
    if !(args.time_scale.is_finite() && (1.0..=MAX_TIME_SCALE).contains(&args.time_scale)) {
        bail!(
            "--time-scale: {} is not between 1 and {MAX_TIME_SCALE}",
            args.time_scale
        );
    }
    if args.entries == 0 || args.entries > MAX_ENTRIES {
        bail!("--entries must be from 1 to {MAX_ENTRIES}");
    }
    if args.indicators == 0 {
        bail!("--indicators must be at least 1");
    }
    // Simulated seconds, times the scale, must stay a duration tokio can sleep.
    let seconds = [
        ("--interval-seconds", args.interval_seconds),
        ("--settle-seconds", args.settle_seconds as f64),
        ("--window-seconds", args.window_seconds as f64),
    ];
    for (flag, value) in seconds {
        if !(value.is_finite() && (0.0..=MAX_SECONDS).contains(&value)) {
            bail!("{flag} must be a number of seconds from 0 to {MAX_SECONDS}");
        }
    }
    if args
        .blocking_threads
        .is_some_and(|threads| !(1..=512).contains(&threads))
    {
        bail!("--blocking-threads must be from 1 to 512");
    }
    if args.window_seconds == 0 {
        bail!("--window-seconds must be at least 1");
    }
    if args
        .bandwidth_mbit
        .is_some_and(|rate| !(rate.is_finite() && rate > 0.0 && rate <= 1e6))
    {
        bail!("--bandwidth-mbit must be more than 0 and at most 1,000,000");
    }
    for code in &args.cut {
        if geo::Continent::from_code(&code.to_uppercase()).is_none() {
            bail!("--cut: {code:?} is not a continent code (AF, AN, AS, EU, NA, OC or SA)");
        }
    }
    Ok(())
}

/// libp2p gives a new substream 10 s of wall-clock time to negotiate its protocol (one
/// round trip), whatever the node configures; past that a sync request fails as timed out.
/// A stretched round trip must stay well inside it.
const MAX_STRETCHED_ROUND_TRIP: Duration = Duration::from_secs(7);

/// Refuses a time scale that stretches the longest round trip between two members past
/// what libp2p allows a substream's negotiation.
fn check_round_trip(
    capitals: &[Capital],
    placement: &[usize],
    model: &LatencyModel,
    scale: f64,
) -> Result<()> {
    let mut sites: Vec<usize> = placement.to_vec();
    sites.sort_unstable();
    sites.dedup();
    let longest = sites
        .iter()
        .filter_map(|site| capitals.get(*site))
        .flat_map(|a| {
            sites
                .iter()
                .filter_map(|site| capitals.get(*site))
                .map(move |b| model.one_way(a, b) + model.one_way(b, a))
        })
        .max()
        .unwrap_or_default();
    let stretched = longest.mul_f64(scale);
    if stretched > MAX_STRETCHED_ROUND_TRIP {
        bail!(
            "--time-scale {scale}: the longest round trip between two members, {} ms, would \
             take {:.1} s of wall-clock time, past the {} s this simulation allows (libp2p \
             gives a substream 10 s to negotiate, after which sync requests time out, and a \
             busy CPU needs a margin); use at most {:.0}",
            longest.as_millis(),
            stretched.as_secs_f64(),
            MAX_STRETCHED_ROUND_TRIP.as_secs(),
            (MAX_STRETCHED_ROUND_TRIP.as_secs_f64() / longest.as_secs_f64().max(1e-9)).floor()
        );
    }
    Ok(())
}

/// Builds the links and the federation for `setup` and starts every node.
pub(crate) fn build(args: &SimulateArgs, setup: &Setup) -> Result<World> {
    let scale = setup.scale;
    let links = Arc::new(Links::new(
        setup.placement.clone(),
        |a, b| match (setup.capitals.get(a), setup.capitals.get(b)) {
            (Some(a), Some(b)) => setup.model.one_way(a, b).mul_f64(scale),
            _ => Duration::ZERO,
        },
        args.bandwidth_mbit.map(|mbit| mbit * 1e6 / 8.0 / scale),
    ));
    let countries: Vec<String> = (0..setup.len())
        .map(|node| {
            setup
                .capital(node)
                .map_or_else(|| "XX".to_owned(), |capital| capital.code.clone())
        })
        .collect();
    let stores = args.dir.join("simulation");
    std::fs::create_dir_all(&stores).with_context(|| format!("creating {}", stores.display()))?;
    let dir = tempfile::Builder::new()
        .prefix("world-")
        .tempdir_in(&stores)
        .with_context(|| format!("creating a directory in {}", stores.display()))?;
    let mut world = World::new(dir, &countries, links, scale, args.seed, args.seeded_links)?;
    for index in 0..world.len() {
        world.start(index)?;
    }
    Ok(world)
}
