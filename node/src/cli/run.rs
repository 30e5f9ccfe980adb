//! `threatmesh run`: store, mesh and HTTP API, until Ctrl-C or SIGTERM.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use serde::Serialize;

use crate::config::Config;
use crate::store::{Options, Store};
use crate::{api, keyfile, network};

#[derive(Debug, Args)]
pub(super) struct RunArgs {
    /// The configuration file.
    #[arg(long, default_value = "threatmesh.toml", env = "THREATMESH_CONFIG")]
    config: PathBuf,
    /// Overrides node.federation.
    #[arg(long, env = "THREATMESH_FEDERATION")]
    federation: Option<String>,
    /// Overrides node.charter_file.
    #[arg(long, env = "THREATMESH_CHARTER")]
    charter: Option<PathBuf>,
    /// Overrides network.listen (repeat for several; comma-separated in the environment).
    #[arg(long, env = "THREATMESH_LISTEN", value_delimiter = ',')]
    listen: Vec<String>,
    /// Adds to network.bootstrap (repeat for several; comma-separated in the environment).
    #[arg(long, env = "THREATMESH_BOOTSTRAP", value_delimiter = ',')]
    bootstrap: Vec<String>,
    /// Overrides api.listen.
    #[arg(long, env = "THREATMESH_API_LISTEN")]
    api_listen: Option<String>,
    /// Overrides log.format (`human` or `json`).
    #[arg(long, env = "THREATMESH_LOG_FORMAT")]
    log_format: Option<String>,
    /// Stop (cleanly) when the process with this id is gone: a supervisor that dies,
    /// even by SIGKILL, leaves no node behind.
    #[arg(long, hide = true)]
    exit_with_parent: Option<u32>,
}

/// What a running node writes to `<data_dir>/endpoints.json` once it listens, so scripts
/// (and the testnet) find it even when it was given port 0.
#[derive(Debug, Serialize)]
struct Endpoints {
    peer_id: String,
    api: String,
    p2p: Vec<String>,
}

pub(super) fn run(args: RunArgs) -> Result<()> {
    let mut config = Config::load(&args.config)?;
    crate::config::check_private_file(&args.config)?;
    if let Some(federation) = args.federation {
        config.node.federation = Some(federation);
    }
    if let Some(charter) = args.charter {
        // Flags are relative to the working directory, the file's paths to the file.
        config.node.charter_file = Some(std::path::absolute(charter)?);
    }
    if !args.listen.is_empty() {
        config.network.listen = args.listen;
    }
    config.network.bootstrap.extend(args.bootstrap);
    if let Some(api_listen) = args.api_listen {
        config.api.listen = api_listen;
    }
    if let Some(format) = args.log_format {
        config.log.format = format;
    }
    let base = args.config.parent().unwrap_or(Path::new(".")).to_path_buf();
    let config = config.validate(&base)?;
    crate::config::prepare_data_dir(&config.data_dir)?;
    init_logging(config.json_logs, &config.log_level)?;
    for skipped in &config.warninglists_skipped {
        tracing::warn!(%skipped, "warninglist left out (warninglists.skip_invalid = true)");
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(serve(config, args.exit_with_parent))
}

fn init_logging(json: bool, level: &str) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .with_context(|| format!("setting log.level: {level:?} is not a valid filter"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    result.map_err(|error| anyhow::anyhow!("logging: {error}"))
}

/// How often a running node looks at its encryption keyring for keys added to it.
const KEYRING_POLL: std::time::Duration = std::time::Duration::from_secs(5);

/// Adds to the running node every key that appears in the keyring at `path`
/// (`threatmesh key rotate-encryption` or `add-encryption`), so entries sealed to it open
/// and those stored unread are tried again, without a restart. Keys removed from the file
/// stay in use until the node restarts. Runs until the node stops.
async fn follow_keyring(path: std::path::PathBuf, client: network::Client) {
    let stamp = |path: &std::path::Path| {
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

async fn serve(config: crate::config::Validated, parent: Option<u32>) -> Result<()> {
    let key = keyfile::read(&config.key_file)?;
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
    let charter = match store.latest_charter()? {
        Some(charter) => {
            if charter.federation() != config.federation {
                bail!(
                    "the store at {} belongs to federation {}, the configuration names {}",
                    config.data_dir.display(),
                    charter.federation(),
                    config.federation
                );
            }
            charter
        }
        None => {
            let path = config
                .charter_file
                .as_ref()
                .context("setting node.charter_file: the store holds no charter yet, so the genesis charter is needed")?;
            let genesis = super::charter::load(path)?;
            genesis.verify_genesis(config.federation).with_context(|| {
                format!(
                    "{} is not the genesis of federation {}",
                    path.display(),
                    config.federation
                )
            })?;
            store.put_charter(&genesis)?;
            genesis
        }
    };
    if let Some(current) = network_config.encryption_keys.first() {
        let public = threatmesh_protocol::PublicKey::of(&key);
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
    let (client, event_loop) = network::new(network_config, key, store.clone(), charter)?;
    let network_task = tokio::spawn(event_loop.run());
    let keyring_task = config
        .encryption_key_file
        .clone()
        .map(|path| tokio::spawn(follow_keyring(path, client.clone())));
    let listener = tokio::net::TcpListener::bind(config.api_listen)
        .await
        .with_context(|| format!("setting api.listen: cannot listen on {}", config.api_listen))?;
    let api_address = listener.local_addr()?;
    let state = api::ApiState::new(store.clone(), client.clone(), config.tokens.clone())
        .with_read_tokens(config.read_tokens.clone())
        .with_feed_tokens(config.feed_tokens.clone())
        .with_limits(config.api_limits);
    let indexer = config
        .taxii_background_index
        .then(|| tokio::spawn(api::keep_taxii_index(state.clone())));
    let console = tokio::spawn(api::keep_console_activity(state.clone()));
    // Feed tokens say a MISP polls this node: keep its feed index warm.
    let feed_indexer = (!config.feed_tokens.is_empty())
        .then(|| tokio::spawn(api::keep_misp_feed_index(state.clone())));
    let router = api::router(state);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let api_task = tokio::spawn(api::serve(listener, router, async {
        let _ = stopped.await;
    }));

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

    shutdown_signal(parent).await;
    tracing::info!("shutting down");
    let _ = stop.send(());
    api_task.await.context("API task")??;
    drop(client);
    if let Some(indexer) = indexer {
        indexer.abort();
    }
    console.abort();
    if let Some(feed_indexer) = feed_indexer {
        feed_indexer.abort();
    }
    if let Some(keyring_task) = keyring_task {
        keyring_task.abort();
    }
    network_task.abort();
    store.flush()?;
    let _ = std::fs::remove_file(endpoints_path);
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal(parent: Option<u32>) {
    let parent_gone = async {
        let Some(parent) = parent else {
            return std::future::pending::<()>().await;
        };
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
        loop {
            tick.tick().await;
            #[cfg(unix)]
            if std::os::unix::process::parent_id() != parent {
                tracing::info!("supervisor gone");
                return;
            }
        }
    };
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(error) => {
                    tracing::warn!(%error, "no SIGTERM handler; only Ctrl-C stops the node");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            _ = interrupt => {},
            () = terminate => {},
            () = parent_gone => {},
        }
    }
    #[cfg(not(unix))]
    {
        tokio::select! {
            _ = interrupt => {},
            () = parent_gone => {},
        }
    }
}
