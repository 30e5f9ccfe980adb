//! A local federation of real `threatmesh` processes on loopback: `up` and `demo`.
//!
//! Ports are fixed (`--base-port` + index for the API, + 1000 + index for the mesh) so a
//! newcomer can type them; keys are fresh each time. Every node is started with
//! `--exit-with-parent`, so no node outlives the testnet, even when it is killed. Running
//! `up` or `demo` again in the same work directory replaces the stopped testnet there
//! (see `work_dir`).

mod bench;
mod demo;
mod http;
mod simulate;
mod work_dir;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use serde_json::{Value, json};

pub(crate) use http::{Answer, delete, get, post, post_answer};

/// The members of the demo federation, in order; more nodes get generic names.
const MEMBERS: [(&str, &str); 5] = [
    ("CERT-FR", "FR"),
    ("CERT-DE", "DE"),
    ("CSA-SG", "SG"),
    ("INTERPOL-IGCI", "XX"),
    ("VENDOR", "XX"),
];

/// How long any node may take to come up, or an entry to arrive.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Node i's mesh port is `--base-port` + this + i: up to this many nodes, the API ports
/// (`--base-port` + i) and the mesh ports do not overlap.
const MESH_PORT_OFFSET: usize = 1000;

#[derive(Debug, Parser)]
#[command(
    name = "threatmesh-testnet",
    about = "A threatmesh federation on this machine"
)]
struct Cli {
    #[command(subcommand)]
    command: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Start a federation of N nodes and run until Ctrl-C.
    Up(UpArgs),
    /// Start a federation, publish a sample, show it reach every node, keep running.
    Demo(DemoArgs),
    /// Measure the mesh and write a report (JSON, Markdown, SVG).
    Bench(bench::BenchArgs),
    /// Simulate a federation of hundreds of members around the world in this process
    /// (the node's own code, latency from the distance between capitals) and report.
    Simulate(simulate::SimulateArgs),
}

#[derive(Debug, Clone, Args)]
struct UpArgs {
    /// How many nodes (members).
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Work directory (created). A stopped testnet this program made there is replaced;
    /// one still running, or one it did not make, is refused.
    #[arg(long, default_value = "testnet-work")]
    dir: PathBuf,
    /// First API port; node i's API is on base + i, its mesh port on base + 1000 + i
    /// (so at most 1000 nodes on fixed ports). 0 lets every node take any free port.
    #[arg(long, default_value_t = 18_000)]
    base_port: u16,
}

#[derive(Debug, Args)]
struct DemoArgs {
    #[command(flatten)]
    up: UpArgs,
    /// Stop after the demo instead of running until Ctrl-C.
    #[arg(long)]
    once: bool,
}

/// One running node.
pub(crate) struct Node {
    name: String,
    /// The work directory of the testnet.
    dir: PathBuf,
    /// The federation's id.
    federation: String,
    /// Its organisation's id (root public key, hex).
    org: String,
    child: Child,
    api: String,
    token: String,
    /// A token that may read only (the web console's read-only sessions).
    read_token: String,
    peer_id: String,
    p2p: String,
}

/// What `testnet.json` holds, for scripts.
#[derive(Debug, Serialize)]
struct NodeInfo<'a> {
    organisation: &'a str,
    peer_id: &'a str,
    api: &'a str,
    token: &'a str,
    read_token: &'a str,
    p2p: &'a str,
}

/// A started federation; dropping it stops every node.
pub(crate) struct Testnet {
    nodes: Vec<Node>,
}

impl Drop for Testnet {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            // SIGTERM for a clean stop; the nodes also stop by themselves once we are gone.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(node.child.id().to_string())
                .status();
        }
        for node in &mut self.nodes {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(node.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = node.child.kill();
            let _ = node.child.wait();
        }
    }
}

/// Stops one node cleanly (SIGTERM, then waits), as the testnet does when it ends.
fn stop(node: Node) {
    drop(Testnet { nodes: vec![node] });
}

/// Runs the testnet's command line.
pub fn main_from<I, T>(args: I) -> Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match Cli::parse_from(args).command {
        Action::Up(args) => {
            let _testnet = up(&args)?;
            println!("\nThe federation runs until Ctrl-C.");
            wait_for_ctrl_c()
        }
        Action::Bench(args) => bench::run(&args),
        Action::Simulate(args) => simulate::run(&args),
        Action::Demo(args) => {
            let testnet = up(&args.up)?;
            demo::run(&testnet)?;
            if args.once {
                return Ok(());
            }
            println!(
                "\nThe federation keeps running: query any node with the commands above. Ctrl-C stops it."
            );
            wait_for_ctrl_c()
        }
    }
}

fn wait_for_ctrl_c() -> Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(tokio::signal::ctrl_c())
        .context("waiting for Ctrl-C")?;
    println!("stopping every node");
    Ok(())
}

/// Runs `threatmesh ARGS` (this program as a node) in `dir`, returning its output.
fn threatmesh(dir: &Path, args: &[&str]) -> Result<String> {
    let output = Command::new(std::env::current_exe()?)
        .arg("node")
        .args(args)
        .current_dir(dir)
        .output()
        .with_context(|| format!("running threatmesh {args:?}"))?;
    if !output.status.success() {
        bail!(
            "threatmesh {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

pub(crate) fn up(args: &UpArgs) -> Result<Testnet> {
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    if args.base_port != 0 && args.nodes > MESH_PORT_OFFSET {
        bail!(
            "--nodes over {MESH_PORT_OFFSET} on fixed ports would put APIs on mesh ports: \
             use --base-port 0"
        );
    }
    let mut work_dir = work_dir::WorkDir::claim(&args.dir, args.nodes)?;
    let dir = std::path::absolute(&args.dir)?;
    println!(
        "creating a federation of {} members in {}",
        args.nodes,
        dir.display()
    );
    threatmesh(&dir, &["key", "new", "steward.key"])?;
    let mut names = Vec::new();
    for index in 0..args.nodes {
        let (name, country) = MEMBERS.get(index).map_or_else(
            || (format!("MEMBER-{}", index + 1), "XX".to_owned()),
            |(n, c)| ((*n).to_owned(), (*c).to_owned()),
        );
        init(
            &dir,
            &format!("node{index}"),
            args.base_port,
            index,
            &name,
            &country,
        )?;
        names.push(name);
    }
    let mut charter = vec![
        "charter",
        "new",
        "--name",
        "Testnet federation",
        "--steward",
        "steward.key",
        "--out",
        "genesis.json",
    ];
    let members: Vec<String> = (0..args.nodes)
        .map(|index| format!("node{index}/member.json"))
        .collect();
    for member in &members {
        charter.extend(["--member", member.as_str()]);
    }
    threatmesh(&dir, &charter)?;
    threatmesh(
        &dir,
        &["charter", "sign", "--key", "steward.key", "genesis.json"],
    )?;
    let federation = threatmesh(&dir, &["charter", "verify", "genesis.json"])?
        .lines()
        .find_map(|line| line.strip_prefix("federation: ").map(str::to_owned))
        .context("no federation id")?;

    let mut testnet = Testnet { nodes: Vec::new() };
    for (index, name) in names.into_iter().enumerate() {
        // Every node started before: on free ports (`--base-port 0`) the charter lists no
        // address, and only this makes the mesh complete, as the charter's addresses do
        // on fixed ports.
        let bootstrap: Vec<String> = testnet.nodes.iter().map(|node| node.p2p.clone()).collect();
        let node = start(&dir, &format!("node{index}"), name, &federation, &bootstrap)?;
        work_dir.started(node.child.id())?;
        testnet.nodes.push(node);
    }
    // Wait for the mesh: every node connected to every other, or, for a node that keeps
    // a bounded set of peers, to at least the low mark of that set (`peers_low`).
    let others = testnet.nodes.len() as u64 - 1;
    wait(
        &format!("every node to connect to {others} peers or its peers_low"),
        || {
            for node in &testnet.nodes {
                let status = get(node, "/api/v1/status")?;
                let wanted = status["peers_low"]
                    .as_u64()
                    .map_or(others, |low| low.min(others));
                if status["peers"].as_u64().unwrap_or(0) < wanted {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )?;
    print_table(&testnet, &dir)?;
    Ok(testnet)
}

/// Creates the keys and configuration of organisation `name`'s node in `dir/node_dir`
/// (`threatmesh init`), on the ports of node `index`. With fixed ports its address is
/// known now and goes into its member file, so the charter lists it and every node can
/// dial every other member (it dials as many as its peer set holds), as a real
/// federation's charter would have it.
fn init(
    dir: &Path,
    node_dir: &str,
    base_port: u16,
    index: usize,
    name: &str,
    country: &str,
) -> Result<()> {
    let api = format!("127.0.0.1:{}", port(base_port, index, 0)?);
    let p2p = format!(
        "/ip4/127.0.0.1/tcp/{}",
        port(base_port, index, MESH_PORT_OFFSET)?
    );
    let printed = threatmesh(
        dir,
        &[
            "init",
            "--dir",
            node_dir,
            // A testnet's organisations live on this machine with their nodes.
            "--with-org-key",
            "--org-name",
            name,
            "--country",
            country,
            "--api-listen",
            &api,
            "--listen",
            &p2p,
        ],
    )?;
    // Every node of the testnet connects from 127.0.0.1, up to 49 of them to each node at
    // start: the per-address limits of a real deployment would make the mesh form by
    // redials. The node under test sees them as one address, so lift them.
    let config_path = dir.join(node_dir).join("threatmesh.toml");
    let config = std::fs::read_to_string(&config_path)?
        .replace("ip_max_pending = 8\n", "ip_max_pending = 64\n")
        .replace(
            "ip_connections_per_sec = 2\n",
            "ip_connections_per_sec = 1000\n",
        )
        .replace("ip_connection_burst = 32\n", "ip_connection_burst = 1000\n")
        // A read token too, so the web console's read-only sessions can be tried.
        .replace(
            "# read_tokens = [\"...\"]\n",
            &format!("read_tokens = [\"{}\"]\n", read_token()?),
        )
        // The labs and their tests publish documentation (RFC 5737, RFC 3849) and private
        // addresses as stand-ins for real C2 servers, through every path (TAXII POST has
        // no override): the warninglists of those ranges are off here, the others stay on.
        .replace(
            "# disabled = [\"cisco_top10k\"]\n",
            "disabled = [\"rfc1918\", \"rfc5735\", \"rfc3849\"]\n",
        );
    // The settings must have been found: a template that writes them differently would
    // otherwise leave the testnet measuring something else without a word.
    for setting in [
        "ip_max_pending = 64\n",
        "ip_connections_per_sec = 1000\n",
        "ip_connection_burst = 1000\n",
        "read_tokens = [\"",
        "disabled = [\"rfc1918\"",
    ] {
        if !config.contains(setting) {
            bail!(
                "{} does not set {}: the testnet cannot adjust this node's configuration",
                config_path.display(),
                setting.trim_end()
            );
        }
    }
    std::fs::write(&config_path, config)?;
    if base_port != 0 {
        let peer = printed
            .lines()
            .find_map(|line| line.strip_prefix("peer id").map(str::trim))
            .context("init printed no peer id")?;
        let member_path = dir.join(node_dir).join("member.json");
        let mut member: Value = serde_json::from_str(&std::fs::read_to_string(&member_path)?)?;
        member["addresses"] = json!([format!("{p2p}/p2p/{peer}")]);
        std::fs::write(&member_path, serde_json::to_string_pretty(&member)?)?;
    }
    Ok(())
}

/// A fresh read token: 24 random bytes in hex.
fn read_token() -> Result<String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
    Ok(threatmesh_protocol::crypto::hex_encode(&bytes))
}

/// Node `index`'s port: `base + offset + index`, or 0 (any free port) when `base` is 0.
fn port(base: u16, index: usize, offset: usize) -> Result<u16> {
    if base == 0 {
        return Ok(0);
    }
    u16::try_from(usize::from(base) + offset + index)
        .context("port out of range: lower --base-port")
}

/// Starts the node whose files `init` wrote in `dir/node_dir`, dialling `bootstrap`.
fn start(
    dir: &Path,
    node_dir: &str,
    name: String,
    federation: &str,
    bootstrap: &[String],
) -> Result<Node> {
    let node_dir = dir.join(node_dir);
    let log = std::fs::File::create(node_dir.join("node.log"))?;
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args([
            "node",
            "run",
            "--config",
            "threatmesh.toml",
            "--federation",
            federation,
            "--charter",
        ])
        .arg(dir.join("genesis.json"))
        .args(["--exit-with-parent", &std::process::id().to_string()])
        .current_dir(&node_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    for address in bootstrap {
        command.args(["--bootstrap", address]);
    }
    // A node killed with SIGKILL leaves its endpoints behind: wait for fresh ones.
    let endpoints = node_dir.join("data/endpoints.json");
    let _ = std::fs::remove_file(&endpoints);
    let child = command
        .spawn()
        .with_context(|| format!("starting {name}'s node"))?;
    let mut found = None;
    wait(
        &format!(
            "{name}'s node to listen (see {})",
            node_dir.join("node.log").display()
        ),
        || {
            found = std::fs::read_to_string(&endpoints)
                .ok()
                .and_then(|text| serde_json::from_str::<Value>(&text).ok());
            Ok(found.is_some())
        },
    )?;
    let endpoints = found.context("no endpoints")?;
    let config = std::fs::read_to_string(node_dir.join("threatmesh.toml"))?;
    let listed = |name: &str| {
        config.lines().find_map(|line| {
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(" = [\""))
                .and_then(|rest| rest.strip_suffix("\"]"))
                .map(str::to_owned)
        })
    };
    let token = listed("tokens").context("no API token in the node's configuration")?;
    let read_token = listed("read_tokens").context("no read token in the node's configuration")?;
    let member: Value =
        serde_json::from_str(&std::fs::read_to_string(node_dir.join("member.json"))?)?;
    Ok(Node {
        name,
        dir: dir.to_path_buf(),
        federation: federation.to_owned(),
        org: member["org"].as_str().unwrap_or_default().to_owned(),
        child,
        api: endpoints["api"].as_str().unwrap_or_default().to_owned(),
        peer_id: endpoints["peer_id"].as_str().unwrap_or_default().to_owned(),
        p2p: endpoints["p2p"][0].as_str().unwrap_or_default().to_owned(),
        token,
        read_token,
    })
}

/// Polls `done` until it holds, failing after [`TIMEOUT`].
pub(crate) fn wait(what: &str, mut done: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if done().unwrap_or(false) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {TIMEOUT:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn print_table(testnet: &Testnet, dir: &Path) -> Result<()> {
    println!();
    let header = format!(
        "{:<15} {:<54} {:<24} TOKEN",
        "ORGANISATION", "PEER ID", "API"
    );
    println!("{header}");
    for node in &testnet.nodes {
        println!(
            "{:<15} {:<54} {:<24} {}",
            node.name, node.peer_id, node.api, node.token
        );
    }
    let info: Vec<NodeInfo<'_>> = testnet
        .nodes
        .iter()
        .map(|node| NodeInfo {
            organisation: &node.name,
            peer_id: &node.peer_id,
            api: &node.api,
            token: &node.token,
            read_token: &node.read_token,
            p2p: &node.p2p,
        })
        .collect();
    std::fs::write(
        dir.join("testnet.json"),
        serde_json::to_string_pretty(&info)?,
    )?;
    println!("\n(also in {})", dir.join("testnet.json").display());
    if let Some(node) = testnet.nodes.last() {
        println!("\nAsk a node what it knows:");
        println!(
            "  curl -s -H 'Authorization: Bearer {}' {}/api/v1/indicators/ipv4/198.51.100.23",
            node.token, node.api
        );
        println!(
            "\nOr open its web console in a browser, {}/ui/, and sign in with its token.",
            node.api
        );
    }
    Ok(())
}
