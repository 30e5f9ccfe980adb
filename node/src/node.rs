//! The composition root: [`Node::start`] wires one node from a validated configuration
//! (key, store, genesis charter, mesh, HTTP API and the background tasks beside it) and
//! [`Node::shutdown`] stops it in order.
//!
//! Every way of running a node goes through here: `threatmesh run`, the in-process tests
//! and the testnet (whose nodes are `threatmesh run` processes), so they all run the same
//! wiring. The model is mini-redis's `server::run(listener, shutdown)`: the caller owns the
//! stop signal, this module owns what is started and how it stops.
//!
//! Everything the node logs, in its own tasks, runs inside one `node` span whose `node`
//! field is the end of its peer id ([`short_peer_id`]), so the interleaved log of several
//! nodes in one process can be split by node.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use libp2p::{Multiaddr, PeerId};
use serde::Serialize;
use threatmesh_protocol::{SignedCharter, SigningKey};
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use crate::config::Validated;
use crate::network::{self, Client};
use crate::publish::Publisher;
use crate::store::{Options, Store};
use crate::{api, keyfile};

/// How often a running node looks at its encryption keyring for keys added to it.
const KEYRING_POLL: std::time::Duration = std::time::Duration::from_secs(5);

/// How long requests in flight at a stop may take to finish before they are cut off: a
/// slow client, or a long import, must not keep the node from stopping.
const API_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// How long the last flush of the store at a stop may take. One that takes longer is
/// stuck (sled 0.34 never finishes flushing after some failed writes, see
/// [`Store::handles`]); the stop reports it rather than waiting forever.
const FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// How many characters of the peer id the `node` span shows: enough to tell a
/// federation's nodes apart in a log, short enough to read on every line.
const SHORT_PEER_ID_CHARS: usize = 6;

/// A running node: its handles, and what [`Node::shutdown`] needs to stop it.
///
/// Dropped without [`Node::shutdown`], its tasks are aborted, its store is not flushed
/// and `endpoints.json` stays behind.
#[derive(Debug)]
pub struct Node {
    client: Client,
    /// The node's one publisher, shared with the API.
    publisher: Publisher,
    store: Store,
    api_address: SocketAddr,
    p2p_addresses: Vec<Multiaddr>,
    endpoints_path: PathBuf,
    span: tracing::Span,
    /// Stops the API server (then `api_task` ends).
    stop_api: Option<tokio::sync::oneshot::Sender<()>>,
    api_task: Option<JoinHandle<std::io::Result<()>>>,
    /// The event loop, aborted last.
    network_task: Option<JoinHandle<()>>,
    /// The tasks beside the API (indexers, sampler, keyring follower): aborted at the stop.
    background: Vec<JoinHandle<()>>,
}

/// What a running node writes to `<data_dir>/endpoints.json` once it listens, so scripts
/// (and the testnet) find it even when it was given port 0.
#[derive(Debug, Serialize)]
struct Endpoints {
    peer_id: String,
    api: String,
    p2p: Vec<String>,
}

impl Node {
    /// Starts the node `config` describes: reads its key and keyring, opens the store
    /// (taking the genesis charter from `node.charter_file` when the store holds none),
    /// starts the mesh, the HTTP API on `api.listen` and the tasks beside it, and writes
    /// `endpoints.json` once libp2p listens. The data directory must exist
    /// ([`crate::config::prepare_data_dir`]).
    pub async fn start(config: Validated) -> Result<Node> {
        let key = keyfile::read(&config.key_file)?;
        let peer = peer_id_of(&key);
        let span = tracing::info_span!("node", node = %short_peer_id(&peer));
        start(config, key, span.clone()).instrument(span).await
    }

    /// The node's libp2p peer id.
    pub fn peer_id(&self) -> PeerId {
        self.client.peer_id()
    }

    /// Where the HTTP API listens (the port chosen when `api.listen` asked for port 0).
    pub fn api_address(&self) -> SocketAddr {
        self.api_address
    }

    /// Where libp2p listens, as bound at the start (without the `/p2p/<peer id>` part).
    pub fn p2p_addresses(&self) -> &[Multiaddr] {
        &self.p2p_addresses
    }

    /// The node's network handle.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The node's publisher: publishing through it shares fsyncs with the API's calls.
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// The node's store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The `node` span its tasks log in.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Stops the node in order, every step bounded: the API first (requests in flight
    /// get `API_GRACE` to finish), then the tasks beside it (the TAXII indexer among
    /// them) and the mesh, each waited for until it has stopped; then flushes the store
    /// (within `FLUSH_WAIT`) and removes `endpoints.json`.
    ///
    /// Work those tasks handed to blocking threads (an ingest check, an index turn of a
    /// fraction of a second) may still run after this returns, with its own handle of the
    /// store: the runtime's shutdown waits for it (`threatmesh run` waits a bounded time),
    /// and the last handle dropped flushes the store again.
    pub async fn shutdown(mut self) -> Result<()> {
        let span = self.span.clone();
        async move {
            tracing::info!("shutting down");
            if let Some(stop) = self.stop_api.take() {
                let _ = stop.send(());
            }
            if let Some(mut api_task) = self.api_task.take() {
                match tokio::time::timeout(API_GRACE, &mut api_task).await {
                    Ok(served) => served.context("API task")??,
                    Err(_) => {
                        tracing::warn!(
                            grace = ?API_GRACE,
                            "requests still in flight at the stop are cut off"
                        );
                        api_task.abort();
                        let _ = api_task.await;
                    }
                }
            }
            // Awaiting an aborted task returns once it has been dropped, with what it held.
            for task in self.background.drain(..) {
                task.abort();
                let _ = task.await;
            }
            if let Some(network_task) = self.network_task.take() {
                network_task.abort();
                let _ = network_task.await;
            }
            let store = self.store.clone();
            let flushed = tokio::task::spawn_blocking(move || store.flush());
            match tokio::time::timeout(FLUSH_WAIT, flushed).await {
                Ok(flushed) => flushed.context("flushing the store")??,
                Err(_) => bail!("the store's last flush did not finish within {FLUSH_WAIT:?}"),
            }
            let _ = std::fs::remove_file(&self.endpoints_path);
            tracing::info!("stopped");
            Ok(())
        }
        .instrument(span)
        .await
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // After `shutdown` these are gone; otherwise the node must not outlive its handle.
        let tasks = self.api_task.iter().map(JoinHandle::abort_handle);
        let tasks = tasks
            .chain(self.network_task.iter().map(JoinHandle::abort_handle))
            .chain(self.background.iter().map(JoinHandle::abort_handle));
        for task in tasks {
            task.abort();
        }
    }
}

/// The last six characters of `peer`: the `node` field of its span.
pub fn short_peer_id(peer: &PeerId) -> String {
    let text = peer.to_string();
    let start = text
        .char_indices()
        .rev()
        .nth(SHORT_PEER_ID_CHARS - 1)
        .map_or(0, |(index, _)| index);
    text[start..].to_owned()
}

fn peer_id_of(key: &SigningKey) -> PeerId {
    let public = threatmesh_protocol::PublicKey::of(key);
    PeerId::from_bytes(&public.peer_id_bytes())
        .expect("an ed25519 public key always makes a valid peer id")
}

/// [`Node::start`] after the key is read, inside the node's span.
async fn start(config: Validated, key: SigningKey, span: tracing::Span) -> Result<Node> {
    let mut network_config = config.network.clone();
    match &config.encryption_key_file {
        Some(path) => {
            let ring = keyfile::read_keyring(path)?;
            tracing::info!(
                current = %threatmesh_protocol::crypto::hex_encode(&ring[0].public_key()),
                earlier = ring.len() - 1,
                "organisation encryption keys loaded: bundles sealed to any of them are read"
            );
            network_config.encryption_keys = ring;
        }
        None => tracing::info!(
            "no node.encryption_key_file: sealed bundles are stored and relayed, none is read"
        ),
    }
    let store = Store::open(
        &config.data_dir,
        &Options {
            cache_bytes: config.cache_bytes,
            temporary: false,
            reserve_bytes: config.reserve_bytes,
        },
    )?;
    let charter = charter_in_force(&config, &store)?;
    warn_of_an_unlisted_encryption_key(&key, &network_config, &charter);
    let (client, event_loop) = network::new(network_config, key.clone(), store.clone(), charter)?;
    let publisher = Publisher::new(key, store.clone(), client.clone());
    let network_task = tokio::spawn(event_loop.run().instrument(span.clone()));
    let mut background = Vec::new();
    if let Some(path) = config.encryption_key_file.clone() {
        background.push(tokio::spawn(
            follow_keyring(path, client.clone()).instrument(span.clone()),
        ));
    }
    let listener = tokio::net::TcpListener::bind(config.api_listen)
        .await
        .with_context(|| format!("setting api.listen: cannot listen on {}", config.api_listen))?;
    let api_address = listener.local_addr()?;
    let state = api::ApiState::new(
        store.clone(),
        client.clone(),
        publisher.clone(),
        config.tokens.clone(),
    )
    .with_read_tokens(config.read_tokens.clone())
    .with_feed_tokens(config.feed_tokens.clone())
    .with_limits(config.api_limits);
    if config.taxii_background_index {
        background.push(tokio::spawn(
            api::keep_taxii_index(state.clone()).instrument(span.clone()),
        ));
    }
    background.push(tokio::spawn(
        api::keep_console_activity(state.clone()).instrument(span.clone()),
    ));
    // Feed tokens say a MISP polls this node: keep its feed index warm.
    if !config.feed_tokens.is_empty() {
        background.push(tokio::spawn(
            api::keep_misp_feed_index(state.clone()).instrument(span.clone()),
        ));
    }
    // axum serves each connection in a task of its own: the layer puts every request
    // back in the node's span.
    let request_span = span.clone();
    let router = api::router(state).layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            next.run(request).instrument(request_span.clone())
        },
    ));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let api_task = tokio::spawn(
        api::serve(listener, router, async {
            let _ = stopped.await;
        })
        .instrument(span.clone()),
    );

    // Tell scripts where the node is, once libp2p has bound its addresses.
    let mut p2p = Vec::new();
    for _ in 0..100 {
        p2p = client.listen_addrs().await?;
        if !p2p.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let peer = client.peer_id();
    let endpoints = Endpoints {
        peer_id: peer.to_string(),
        api: format!("http://{api_address}"),
        p2p: p2p
            .iter()
            .map(|address| format!("{address}/p2p/{peer}"))
            .collect(),
    };
    let endpoints_path = config.data_dir.join("endpoints.json");
    std::fs::write(&endpoints_path, serde_json::to_string_pretty(&endpoints)?)?;
    tracing::info!(%peer, api = %endpoints.api, "node running");
    Ok(Node {
        client,
        publisher,
        store,
        api_address,
        p2p_addresses: p2p,
        endpoints_path,
        span,
        stop_api: Some(stop),
        api_task: Some(api_task),
        network_task: Some(network_task),
        background,
    })
}

/// The charter the node starts under: the latest the store holds, or, in a new store,
/// the genesis charter of `node.charter_file`, checked and stored.
fn charter_in_force(config: &Validated, store: &Store) -> Result<SignedCharter> {
    if let Some(charter) = store.latest_charter()? {
        if charter.federation() != config.federation {
            bail!(
                "the store at {} belongs to federation {}, the configuration names {}",
                config.data_dir.display(),
                charter.federation(),
                config.federation
            );
        }
        return Ok(charter);
    }
    let path = config.charter_file.as_ref().context(
        "setting node.charter_file: the store holds no charter yet, so the genesis charter is needed",
    )?;
    // The file format is the `charter` command's, which stewards write it with.
    let genesis = crate::cli::load_charter(path)?;
    genesis.verify_genesis(config.federation).with_context(|| {
        format!(
            "{} is not the genesis of federation {}",
            path.display(),
            config.federation
        )
    })?;
    store.put_charter(&genesis)?;
    Ok(genesis)
}

/// Warns when the keyring's current key is not the one the charter lists for this node's
/// organisation: peers seal to the listed key.
fn warn_of_an_unlisted_encryption_key(
    key: &SigningKey,
    network_config: &network::Config,
    charter: &SignedCharter,
) {
    if let Some(current) = network_config.encryption_keys.first() {
        let public = threatmesh_protocol::PublicKey::of(key);
        let listed = charter
            .charter()
            .node(&public)
            .and_then(|(member, _)| member.encryption_key);
        if listed != Some(current.public_key()) {
            tracing::warn!(
                "the current key of node.encryption_key_file is not the encryption key the \
                 charter lists for this organisation: bundles are sealed to the one it lists \
                 (which opens them if this keyring holds it) until a charter lists this key"
            );
        }
    }
}

/// Adds to the running node every key that appears in the keyring at `path`
/// (`threatmesh key rotate-encryption` or `add-encryption`), so entries sealed to it open
/// and those stored unread are tried again, without a restart. Keys removed from the file
/// stay in use until the node restarts. Runs until the node stops.
async fn follow_keyring(path: PathBuf, client: Client) {
    let stamp = |path: &Path| {
        std::fs::metadata(path)
            .ok()
            .map(|metadata| (metadata.modified().ok(), metadata.len()))
    };
    let mut seen = stamp(&path);
    loop {
        tokio::time::sleep(KEYRING_POLL).await;
        let now = stamp(&path);
        if now == seen {
            continue;
        }
        seen = now;
        match keyfile::read_keyring(&path) {
            Ok(ring) => {
                for key in ring {
                    let public = threatmesh_protocol::crypto::hex_encode(&key.public_key());
                    if client.add_encryption_key(key) {
                        tracing::info!(%public, "encryption key added: unread sealed entries are tried again");
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "the encryption keyring changed but cannot be read; the keys held stay in use");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_short_peer_id_is_its_last_six_characters() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let peer = peer_id_of(&key);
        let keypair = libp2p::identity::Keypair::ed25519_from_bytes(key.to_bytes())
            .expect("32 bytes are an ed25519 secret key");
        assert_eq!(peer, keypair.public().to_peer_id());
        let text = peer.to_string();
        assert_eq!(short_peer_id(&peer), text[text.len() - 6..]);
    }
}
