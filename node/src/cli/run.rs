//! `threatmesh run`: load and validate the configuration, start the node
//! ([`crate::Node::start`]), wait for Ctrl-C, SIGTERM or the supervisor's end, stop it.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::Args;

use crate::config::Config;

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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let served = runtime.block_on(serve(config, args.exit_with_parent));
    // Work the node handed to blocking threads before it stopped (an ingest check, an
    // index turn, an import cut off at the stop) gets a bounded time to finish; past it
    // the process exits as after a crash, which loses no write it acknowledged (each was
    // flushed first). Dropping the runtime instead would wait for that work forever.
    runtime.shutdown_timeout(BLOCKING_GRACE);
    served
}

/// How long `threatmesh run` waits, once the node has stopped, for work still running on
/// blocking threads.
const BLOCKING_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

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

/// Starts the node [`crate::Node::start`] and stops it at the signal: Ctrl-C, SIGTERM or
/// the supervisor gone.
async fn serve(config: crate::config::Validated, parent: Option<u32>) -> Result<()> {
    let node = crate::Node::start(config).await?;
    shutdown_signal(parent).await;
    node.shutdown().await
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
