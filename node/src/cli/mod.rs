//! The `threatmesh` command line: parse, dispatch, report errors at the edge.
//!
//! `init`, `org`, `key` and `charter` work on files and never touch the network; `run` starts a
//! node; `publish`, `query` and `status` talk to a running node over its HTTP API.

/// Prints a line on standard output. A reader that went away (`threatmesh ... | head`) is
/// not an error worth a panic: the rest of the output is dropped.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

mod archive;
mod charter;
mod client;
mod exchange;
mod init;
mod org;
mod run;

/// Reads a charter file as `threatmesh charter` writes it; [`crate::Node::start`] reads the
/// genesis charter with it.
pub(crate) use charter::load as load_charter;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The node of a threat-intelligence federation: signs, shares and serves indicators.
#[derive(Debug, Parser)]
#[command(name = "threatmesh", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Set up a node: its key, the organisation's encryption key, a config file, the data
    /// directory and a certificate request for `org certify`. The organisation root key is
    /// not made here (see `org init`) unless --with-org-key asks for it (testnets).
    ///
    /// The config file holds one API token, which may do everything. For tools that should
    /// only read (dashboards, the web console), add a read token, at least 16 characters,
    /// to `read_tokens` under `[api]` (e.g. `openssl rand -hex 24`) and restart the node:
    /// it reads everything, and every write is refused 403.
    Init(init::InitArgs),
    /// The organisation's root key, kept off the nodes: make it (`org init`) and certify
    /// nodes with it (`org certify`).
    #[command(subcommand)]
    Org(org::OrgCommand),
    /// Manage keys (steward keys, spare organisation keys).
    #[command(subcommand)]
    Key(init::KeyCommand),
    /// The stewards' workflow: create, change, sign and check the federation charter.
    #[command(subcommand)]
    Charter(charter::CharterCommand),
    /// Run the node: store, mesh and HTTP API, until Ctrl-C or SIGTERM.
    Run(run::RunArgs),
    /// Publish indicators through a running node.
    Publish(client::PublishArgs),
    /// Ask a running node what it knows about values.
    Query(client::QueryArgs),
    /// Show a running node's status.
    Status(client::ApiArgs),
    /// Import a STIX 2.1 bundle, a MISP event or a CSV / plain list into a running node,
    /// which publishes it; prints what was read, used, refused and why.
    Import(exchange::ImportArgs),
    /// Export everything a running node holds: entries as JSON lines, a STIX 2.1 bundle,
    /// a MISP feed or CSV.
    Export(client::ExportArgs),
    /// Air-gap transfer: a running node's entries and charters in one checked file
    /// (`archive export`), verified and stored on another node (`archive import`).
    #[command(subcommand)]
    Archive(archive::ArchiveCommand),
}

/// Runs the command line and returns the process's exit code.
pub fn main() -> ExitCode {
    main_from(std::env::args_os())
}

/// [`main`] with the arguments given (the first is the program's name), for programs
/// that embed the `threatmesh` command (the testnet runs its nodes this way).
pub fn main_from<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match cli.command {
        Command::Init(args) => init::run(&args),
        Command::Key(command) => init::key(&command),
        Command::Org(command) => org::run(&command),
        Command::Charter(command) => charter::run(&command),
        Command::Run(args) => run::run(args),
        Command::Publish(args) => client::publish(&args),
        Command::Query(args) => client::query(&args),
        Command::Status(args) => client::status(&args),
        Command::Import(args) => exchange::import(&args),
        Command::Export(args) => client::export(&args),
        Command::Archive(command) => archive::run(&command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The wall clock, as the protocol counts time.
fn now() -> threatmesh_protocol::Timestamp {
    crate::network::now()
}

/// The libp2p PeerId of a node key, as text.
fn peer_id(node: &threatmesh_protocol::PublicKey) -> String {
    libp2p::PeerId::from_bytes(&node.peer_id_bytes())
        .map_or_else(|_| node.to_string(), |peer| peer.to_string())
}
