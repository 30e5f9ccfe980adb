//! Multi-node integration tests and their helpers.
//!
//! A [`Federation`] is a seeded set of keys (one steward, one organisation and one node per
//! member) with its genesis charter, so failures reproduce. A [`TestNet`] runs real nodes
//! of it in this process, each started by [`Node::start`] as `threatmesh run` starts one
//! (validated configuration file, HTTP API, TAXII indexer and the other tasks beside it): each with a temporary
//! directory, listening on `127.0.0.1:0` (libp2p and HTTP), with a fast gossipsub
//! heartbeat. Topology helpers ([`TestNet::line`], [`TestNet::star`])
//! connect them and wait for the gossip mesh to form. Every wait goes through
//! [`wait_for`], bounded by [`TIMEOUT`].

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use libp2p::Multiaddr;
use threatmesh_node::Node;
use threatmesh_node::config::{Config, Validated};
use threatmesh_node::keyfile;
use threatmesh_node::network::{self, Client};
use threatmesh_node::store::{Options, Store};
use threatmesh_protocol::charter::{Charter, Member, NodeCertificate, Roles, Status};
use threatmesh_protocol::item::{Indicator, Item};
use threatmesh_protocol::testing;
use threatmesh_protocol::{
    EncryptionSecret, Hash, Kind, PublicKey, SignedCharter, SigningKey, Timestamp, Value,
};

mod raw;

pub use raw::{RawCodec, RawPeer, RawSyncPeer, SYNC_PROTOCOL, raw_swarm};

/// The longest any test waits for anything.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Installs a log subscriber once (`RUST_LOG=debug` to see the nodes talk).
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Polls `condition` until it holds, failing after [`TIMEOUT`] with `what`.
pub async fn wait_for<F, Fut>(what: &str, mut condition: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !condition().await {
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {TIMEOUT:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// A seeded federation: steward, organisations and nodes, and its charters.
#[derive(Debug)]
pub struct Federation {
    /// The steward (threshold 1).
    pub steward: SigningKey,
    /// Organisation root keys, one per member.
    pub orgs: Vec<SigningKey>,
    /// Node keys, one per member.
    pub nodes: Vec<SigningKey>,
    /// Organisation encryption keys (for sealed bundles), one per member; the charter
    /// lists their public halves.
    pub encryption: Vec<EncryptionSecret>,
    /// The genesis charter, signed.
    pub genesis: SignedCharter,
}

/// A fixed point in time the certificates are valid around: the kit's [`testing::T0`].
pub fn epoch() -> Timestamp {
    testing::T0
}

impl Federation {
    /// `members` organisations with one node each, all active.
    pub fn new(members: u8) -> Federation {
        let steward = testing::key(0xc0);
        let orgs: Vec<SigningKey> = (0..members).map(|i| testing::key(0x80 + i)).collect();
        let nodes: Vec<SigningKey> = (0..members).map(|i| testing::key(0x40 + i)).collect();
        let encryption: Vec<EncryptionSecret> = (0..members)
            .map(|i| EncryptionSecret::from_bytes([0x20 + i; 32]))
            .collect();
        let charter = Charter {
            federation: Hash::default(),
            name: "Test federation".into(),
            version: 1,
            previous: None,
            issued: epoch(),
            stewards: vec![PublicKey::of(&steward)],
            threshold: 1,
            members: orgs
                .iter()
                .zip(&nodes)
                .zip(&encryption)
                .enumerate()
                .map(|(index, ((org, node), encryption))| member(index, org, node, encryption))
                .collect(),
        };
        let mut genesis = SignedCharter::propose(charter).expect("the test charter is valid");
        genesis.sign(&steward);
        Federation {
            steward,
            orgs,
            nodes,
            encryption,
            genesis,
        }
    }

    /// The charter after `previous`, changed by `change` and signed by the steward.
    pub fn successor(
        &self,
        previous: &SignedCharter,
        change: impl FnOnce(&mut Charter),
    ) -> SignedCharter {
        let mut next = previous.charter().clone();
        next.version += 1;
        next.previous = Some(previous.id());
        next.federation = previous.federation();
        change(&mut next);
        let mut signed = SignedCharter::propose(next).expect("the test charter is valid");
        signed.sign(&self.steward);
        signed
    }

    /// The federation's id.
    pub fn id(&self) -> Hash {
        self.genesis.federation()
    }

    /// Member `index`'s organisation id.
    pub fn org(&self, index: usize) -> PublicKey {
        PublicKey::of(&self.orgs[index])
    }
}

fn member(
    index: usize,
    org: &SigningKey,
    node: &SigningKey,
    encryption: &EncryptionSecret,
) -> Member {
    Member {
        org: PublicKey::of(org),
        name: format!("ORG-{index}"),
        country: "EU".into(),
        roles: Roles {
            publish: true,
            read: true,
        },
        status: Status::Active,
        nodes: vec![NodeCertificate::issue(
            org,
            PublicKey::of(node),
            epoch(),
            // Valid for a century: tests must not depend on today's date.
            Timestamp(epoch().0 + 100 * 365 * 86_400_000),
        )],
        cutoffs: vec![],
        addresses: vec![],
        encryption_key: Some(encryption.public_key()),
    }
}

/// The network settings tests use: loopback, port 0, fast heartbeat and redial.
pub fn test_config() -> network::Config {
    network::Config {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("a valid address")],
        heartbeat: Duration::from_millis(100),
        redial: Duration::from_millis(100),
        max_redial: Duration::from_secs(1),
        sync_interval: Duration::from_secs(60),
        ..network::Config::default()
    }
}

/// One running node, started as `threatmesh run` starts one ([`Node::start`]), from a
/// configuration file checked by the same validation, with its HTTP API (token
/// [`API_TOKEN`]) and the tasks beside it (the TAXII indexer among them). Its directory
/// is removed once its store has closed.
#[derive(Debug)]
pub struct TestNode {
    /// Its network handle.
    pub client: Client,
    /// Its store.
    pub store: Store,
    /// Its node key.
    pub key: SigningKey,
    /// Where it listens, with its `/p2p/<peer id>`.
    pub address: Multiaddr,
    node: Node,
    /// Last, so that it is dropped after the handles above.
    _dir: DataDir,
}

impl TestNode {
    /// Starts a node with key `key` in the federation of `charter`.
    pub async fn start(
        key: SigningKey,
        charter: SignedCharter,
        config: network::Config,
    ) -> Result<TestNode> {
        TestNode::start_with_charters(key, vec![charter], config).await
    }

    /// Starts a node whose store already holds `charters` (oldest first), the last in force.
    ///
    /// The node gets a directory of its own as `threatmesh init` lays one out: its key file,
    /// its organisation's keyring (`config.encryption_keys`, when there are any) and a
    /// configuration file with `config`'s addresses, the API on `127.0.0.1:0` and
    /// [`API_TOKEN`]. The file is loaded and validated as `threatmesh run` does; then the
    /// network settings validation made are replaced by `config`, since tests need timings
    /// and knobs a file does not offer (heartbeat, clock, ban lengths).
    pub async fn start_with_charters(
        key: SigningKey,
        charters: Vec<SignedCharter>,
        config: network::Config,
    ) -> Result<TestNode> {
        let dir = tempfile::tempdir().context("temporary directory")?;
        let validated = node_config(dir.path(), &key, &charters, &config)?;
        let node = Node::start(validated).await.context("starting the node")?;
        let client = node.client().clone();
        wait_for("the node to listen", || async {
            !client.listen_addrs().await.unwrap_or_default().is_empty()
        })
        .await?;
        let address = client
            .listen_addrs()
            .await?
            .into_iter()
            .next()
            .context("no listen address")?;
        let address = address.with(libp2p::multiaddr::Protocol::P2p(client.peer_id()));
        Ok(TestNode {
            client,
            store: node.store().clone(),
            key,
            address,
            _dir: DataDir {
                store: Some(node.store().clone()),
                dir: Some(dir),
            },
            node,
        })
    }

    /// The running node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The address of the node's HTTP API (token [`API_TOKEN`]).
    pub fn api(&self) -> std::net::SocketAddr {
        self.node.api_address()
    }

    /// The node's libp2p listener as a plain TCP address, for tests that connect below
    /// libp2p.
    pub fn tcp_address(&self) -> Result<std::net::SocketAddr> {
        let port = self
            .address
            .iter()
            .find_map(|protocol| match protocol {
                libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
                _ => None,
            })
            .context("the node's address has no TCP port")?;
        Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// Whether the node holds entry `id`.
    ///
    /// # Panics
    ///
    /// When the store cannot be read: the test fails there, rather than taking the error
    /// for "not held" (which a negative assertion would pass on). A panic, not a `Result`,
    /// because tests call this inside the conditions of [`wait_for`] and `assert!`.
    pub fn has(&self, id: &Hash) -> bool {
        match self.store.contains(id) {
            Ok(held) => held,
            Err(error) => panic!("the node's store cannot be read: {error}"),
        }
    }

    /// Whether the node holds every entry of `ids`.
    ///
    /// # Panics
    ///
    /// When the store cannot be read, as [`TestNode::has`].
    pub fn has_all(&self, ids: &[Hash]) -> bool {
        ids.iter().all(|id| self.has(id))
    }

    /// Publishes `count` ipv4 indicators starting at `first`; returns the entry ids.
    pub async fn publish(&self, first: u32, count: u32) -> Result<Vec<Hash>> {
        Ok(self
            .node
            .publisher()
            .publish(
                threatmesh_protocol::Tlp::Green,
                threatmesh_protocol::Distribution::Federation,
                indicators(first, count),
            )
            .await?)
    }
}

/// A node's temporary directory, removed only once the node's store has closed.
///
/// Dropping a [`Node`] aborts its tasks, but the work they handed to blocking threads (an
/// ingest check, a TAXII index turn) runs on, with a handle of the store. A directory
/// removed under such a store broke sled 0.34: a large value it then wrote to a file of
/// its own in that directory failed, and that failure left its log unable to flush ever
/// again ([`Store::handles`]), so the blocking thread that dropped the last handle (sled
/// flushes then) waited forever, and with it the test's runtime at its end.
#[derive(Debug)]
struct DataDir {
    /// A handle of the node's store: the directory goes once it is the last one.
    store: Option<Store>,
    dir: Option<tempfile::TempDir>,
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let (Some(store), Some(dir)) = (self.store.take(), self.dir.take()) else {
            return;
        };
        let multi_thread = tokio::runtime::Handle::try_current().is_ok_and(|runtime| {
            runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        });
        if multi_thread {
            // The other workers meanwhile cancel the node's aborted tasks.
            tokio::task::block_in_place(|| remove_when_closed(store, dir));
        } else {
            // A current-thread runtime cancels the aborted tasks (which hold handles of the
            // store) only once this thread returns to it: wait beside it.
            std::thread::spawn(move || remove_when_closed(store, dir));
        }
    }
}

/// Waits (up to [`TIMEOUT`]) until `store` is the last handle of its store, drops it (sled
/// makes its last flush, into a directory still there) and removes `dir`. A store still in
/// use then is left its directory, which is kept.
fn remove_when_closed(store: Store, dir: tempfile::TempDir) {
    let deadline = std::time::Instant::now() + TIMEOUT;
    while store.handles() > 1 {
        if std::time::Instant::now() >= deadline {
            let path = dir.keep();
            eprintln!(
                "a stopped node's store is still in use ({} handles): {} is kept",
                store.handles(),
                path.display()
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(store);
    drop(dir);
}

/// The bearer token of the HTTP APIs tests start.
pub const API_TOKEN: &str = "integration-test-token";

/// Writes the files of a node in `dir` (key, keyring, the store with `charters`, the
/// configuration file) and returns the configuration as `threatmesh run` validates it, with
/// `network`'s settings in force.
fn node_config(
    dir: &Path,
    key: &SigningKey,
    charters: &[SignedCharter],
    network: &network::Config,
) -> Result<Validated> {
    let federation = charters.last().context("no charter")?.federation();
    let data_dir = dir.join("data");
    threatmesh_node::config::prepare_data_dir(&data_dir)?;
    // The charters a member's store holds after it followed the federation for a while;
    // closed before the node opens the store.
    {
        let store = Store::open(&data_dir, &Options::default()).context("opening the store")?;
        for charter in charters {
            store.put_charter(charter).context("storing a charter")?;
        }
        store.flush().context("flushing the store")?;
    }
    keyfile::write(&dir.join("node.key"), key)?;
    let keyring = match network.encryption_keys.split_first() {
        Some((current, earlier)) => {
            let path = dir.join("encryption.key");
            keyfile::write_encryption(&path, current)?;
            for key in earlier {
                keyfile::add_to_keyring(&path, key, false)?;
            }
            "encryption_key_file = \"encryption.key\"\n"
        }
        None => "",
    };
    let quoted = |addresses: &[Multiaddr]| {
        addresses
            .iter()
            .map(|address| format!("\"{address}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let text = format!(
        "[node]\n\
         data_dir = \"data\"\n\
         key_file = \"node.key\"\n\
         {keyring}\
         federation = \"{federation}\"\n\
         \n\
         [network]\n\
         listen = [{listen}]\n\
         bootstrap = [{bootstrap}]\n\
         \n\
         [api]\n\
         listen = \"127.0.0.1:0\"\n\
         tokens = [\"{API_TOKEN}\"]\n",
        listen = quoted(&network.listen),
        bootstrap = quoted(&network.bootstrap),
    );
    let path = dir.join("threatmesh.toml");
    std::fs::write(&path, text).context("writing the configuration file")?;
    let mut validated = Config::load(&path)?.validate(dir)?;
    validated.network = network::Config {
        // Read from the keyring file, as a node does.
        encryption_keys: Vec::new(),
        ..network.clone()
    };
    Ok(validated)
}

/// `GET path` on the API at `address` with [`API_TOKEN`]: the status code and the body.
pub async fn http_get(address: std::net::SocketAddr, path: &str) -> Result<(u16, String)> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read as _, Write as _};
        let mut stream = std::net::TcpStream::connect(address)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {API_TOKEN}\r\nConnection: close\r\n\r\n"
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let (head, body) = response
            .split_once("\r\n\r\n")
            .context("an HTTP response without a blank line")?;
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .context("an HTTP response without a status")?;
        Ok((status, body.to_owned()))
    })
    .await?
}

/// `count` distinct ipv4 indicators starting at `first`.
pub fn indicators(first: u32, count: u32) -> Vec<Item> {
    (first..first + count)
        .map(|n| {
            let value = Value::parse(Kind::Ipv4, &testing::ipv4(n)).expect("a valid ipv4 address");
            Item::Indicator(Indicator::new(value, epoch()))
        })
        .collect()
}

/// Real nodes of one federation, running in this process.
#[derive(Debug)]
pub struct TestNet {
    /// The federation's keys and charters.
    pub federation: Federation,
    /// The nodes, by member index.
    pub nodes: Vec<TestNode>,
}

impl TestNet {
    /// Starts `n` members' nodes, not connected to each other.
    pub async fn start(n: u8) -> Result<TestNet> {
        TestNet::start_with(n, test_config()).await
    }

    /// [`TestNet::start`] with other network settings.
    pub async fn start_with(n: u8, config: network::Config) -> Result<TestNet> {
        TestNet::start_some(n, n, config).await
    }

    /// A federation of `members`, with nodes running for the first `running` of them
    /// only (the others' keys are free for [`RawPeer`]s).
    pub async fn start_some(members: u8, running: u8, config: network::Config) -> Result<TestNet> {
        init_logging();
        let federation = Federation::new(members);
        let mut nodes = Vec::new();
        for (key, encryption) in federation
            .nodes
            .iter()
            .zip(&federation.encryption)
            .take(usize::from(running))
        {
            let genesis = federation.genesis.clone();
            let config = network::Config {
                encryption_keys: vec![encryption.clone()],
                ..config.clone()
            };
            nodes.push(TestNode::start(key.clone(), genesis, config).await?);
        }
        Ok(TestNet { federation, nodes })
    }

    /// `n` nodes in a line: 0 - 1 - ... - (n-1).
    pub async fn line(n: u8) -> Result<TestNet> {
        let net = TestNet::start(n).await?;
        for i in 1..net.nodes.len() {
            net.connect(i - 1, i).await?;
        }
        net.wait_for_mesh().await?;
        Ok(net)
    }

    /// `n` nodes in a star around node 0.
    pub async fn star(n: u8) -> Result<TestNet> {
        let net = TestNet::start(n).await?;
        for i in 1..net.nodes.len() {
            net.connect(i, 0).await?;
        }
        net.wait_for_mesh().await?;
        Ok(net)
    }

    /// Node `from` dials node `to` and waits until they are connected.
    pub async fn connect(&self, from: usize, to: usize) -> Result<()> {
        connect(&self.nodes[from], &self.nodes[to]).await
    }

    /// Waits until every node has every connected peer in its gossip mesh.
    pub async fn wait_for_mesh(&self) -> Result<()> {
        for (index, node) in self.nodes.iter().enumerate() {
            wait_for(&format!("node {index}'s gossip mesh"), || async {
                let peers = node.client.peers().await.unwrap_or_default();
                let mesh = node.client.mesh_peers().await.unwrap_or_default();
                !peers.is_empty() && peers.iter().all(|peer| mesh.contains(peer))
            })
            .await?;
        }
        Ok(())
    }

    /// Waits until every node holds every entry of `ids`.
    pub async fn wait_everywhere(&self, ids: &[Hash]) -> Result<()> {
        for (index, node) in self.nodes.iter().enumerate() {
            wait_for(
                &format!("node {index} to hold {} entries", ids.len()),
                || async { node.has_all(ids) },
            )
            .await?;
        }
        Ok(())
    }
}

/// `from` dials `to` and waits until both see the connection.
pub async fn connect(from: &TestNode, to: &TestNode) -> Result<()> {
    from.client.dial(to.address.clone()).await?;
    let (a, b) = (from.client.peer_id(), to.client.peer_id());
    wait_for("the connection", || async {
        from.client.peers().await.unwrap_or_default().contains(&b)
            && to.client.peers().await.unwrap_or_default().contains(&a)
    })
    .await
}
