//! Multi-node integration tests and their helpers.
//!
//! A [`Federation`] is a seeded set of keys (one steward, one organisation and one node per
//! member) with its genesis charter, so failures reproduce. A [`TestNet`] runs real nodes
//! of it in this process: each with a temporary store, listening on `127.0.0.1:0`, with a
//! fast gossipsub heartbeat. Topology helpers ([`TestNet::line`], [`TestNet::star`])
//! connect them and wait for the gossip mesh to form. Every wait goes through
//! [`wait_for`], bounded by [`TIMEOUT`].

use std::future::Future;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use libp2p::Multiaddr;
use threatmesh_node::network::{self, Client};
use threatmesh_node::store::{Options, Store};
use threatmesh_protocol::charter::{Charter, Member, NodeCertificate, Roles, Status};
use threatmesh_protocol::item::{Indicator, Item};
use threatmesh_protocol::{Hash, Kind, PublicKey, SignedCharter, SigningKey, Timestamp, Value};

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
    /// The genesis charter, signed.
    pub genesis: SignedCharter,
}

/// A fixed point in time the certificates are valid around.
pub fn epoch() -> Timestamp {
    Timestamp(1_700_000_000_000)
}

impl Federation {
    /// `members` organisations with one node each, all active.
    pub fn new(members: u8) -> Federation {
        let steward = SigningKey::from_bytes(&[0xc0; 32]);
        let orgs: Vec<SigningKey> = (0..members)
            .map(|i| SigningKey::from_bytes(&[0x80 + i; 32]))
            .collect();
        let nodes: Vec<SigningKey> = (0..members)
            .map(|i| SigningKey::from_bytes(&[0x40 + i; 32]))
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
                .enumerate()
                .map(|(index, (org, node))| member(index, org, node))
                .collect(),
        };
        let mut genesis = SignedCharter::propose(charter).expect("the test charter is valid");
        genesis.sign(&steward);
        Federation {
            steward,
            orgs,
            nodes,
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
}

fn member(index: usize, org: &SigningKey, node: &SigningKey) -> Member {
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
        encryption_key: None,
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

/// One running node.
#[derive(Debug)]
pub struct TestNode {
    /// Its network handle.
    pub client: Client,
    /// Its store.
    pub store: Store,
    /// Its node key.
    pub key: SigningKey,
    /// Where it listens.
    pub address: Multiaddr,
    _dir: tempfile::TempDir,
}

impl TestNode {
    /// Starts a node with key `key` in the federation of `charter`.
    pub async fn start(
        key: SigningKey,
        charter: SignedCharter,
        config: network::Config,
    ) -> Result<TestNode> {
        let dir = tempfile::tempdir().context("temporary directory")?;
        let store = Store::open(dir.path(), &Options::default()).context("opening the store")?;
        store.put_charter(&charter).context("storing the charter")?;
        let (client, event_loop) = network::new(config, key.clone(), store.clone(), charter)?;
        tokio::spawn(event_loop.run());
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
            store,
            key,
            address,
            _dir: dir,
        })
    }

    /// Whether the node holds entry `id`.
    pub fn has(&self, id: &Hash) -> bool {
        self.store.contains(id).unwrap_or(false)
    }

    /// Whether the node holds every entry of `ids`.
    pub fn has_all(&self, ids: &[Hash]) -> bool {
        ids.iter().all(|id| self.has(id))
    }

    /// Publishes `count` ipv4 indicators starting at `first`; returns the entry ids.
    pub async fn publish(&self, first: u32, count: u32) -> Result<Vec<Hash>> {
        Ok(self
            .client
            .publish(
                threatmesh_protocol::Tlp::Green,
                threatmesh_protocol::Distribution::Federation,
                indicators(first, count),
            )
            .await?)
    }
}

/// `count` distinct ipv4 indicators starting at `first`.
pub fn indicators(first: u32, count: u32) -> Vec<Item> {
    (first..first + count)
        .map(|n| {
            let [_, b, c, d] = n.to_be_bytes();
            let value =
                Value::parse(Kind::Ipv4, &format!("10.{b}.{c}.{d}")).expect("a valid ipv4 address");
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
        init_logging();
        let federation = Federation::new(n);
        let mut nodes = Vec::new();
        for key in &federation.nodes {
            nodes.push(
                TestNode::start(key.clone(), federation.genesis.clone(), config.clone()).await?,
            );
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
