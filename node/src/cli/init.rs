//! `threatmesh init` and `threatmesh key`: everything an organisation needs on disk.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use threatmesh_protocol::charter::Member;
use threatmesh_protocol::crypto::hex_encode;
use threatmesh_protocol::{PublicKey, Timestamp};

use crate::{config, keyfile};

#[derive(Debug, Args)]
pub(super) struct InitArgs {
    /// Directory to create the files in.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// The organisation's name as the charter will show it (`CERT-FR`).
    #[arg(long)]
    org_name: String,
    /// ISO 3166-1 alpha-2 country code (`FR`), or `EU`/`XX` for international bodies.
    #[arg(long)]
    country: String,
    /// Use this existing organisation root key instead of creating one.
    #[arg(long)]
    org_key: Option<PathBuf>,
    /// Use this existing organisation encryption key (another node of the organisation
    /// has it) instead of creating one.
    #[arg(long)]
    encryption_key: Option<PathBuf>,
    /// How long the node certificate is valid, in days.
    #[arg(long, default_value_t = 365)]
    valid_days: u64,
    /// Address for the HTTP API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    api_listen: String,
    /// libp2p address for the mesh.
    #[arg(long, default_value = "/ip4/0.0.0.0/tcp/4001")]
    listen: String,
}

#[derive(Debug, Subcommand)]
pub(super) enum KeyCommand {
    /// Create a new key file (mode 0600) and print its public key.
    New {
        /// Where to write it.
        file: PathBuf,
    },
    /// Print the public key of a key file.
    Show {
        /// The key file.
        file: PathBuf,
    },
    /// Create a new organisation encryption key (X25519, mode 0600) and print its public
    /// key, for a member file's `encryption_key` (rotation: a newer charter with it).
    NewEncryption {
        /// Where to write it.
        file: PathBuf,
    },
    /// Print the public key of an organisation encryption key file.
    ShowEncryption {
        /// The key file.
        file: PathBuf,
    },
}

pub(super) fn key(command: &KeyCommand) -> Result<()> {
    match command {
        KeyCommand::New { file } => {
            let key = keyfile::generate().context("no randomness from the operating system")?;
            keyfile::write(file, &key)?;
            out!("{}", PublicKey::of(&key));
        }
        KeyCommand::Show { file } => out!("{}", keyfile::public(file)?),
        KeyCommand::NewEncryption { file } => {
            let key = keyfile::generate_encryption()
                .context("no randomness from the operating system")?;
            keyfile::write_encryption(file, &key)?;
            out!("{}", hex_encode(&key.public_key()));
        }
        KeyCommand::ShowEncryption { file } => {
            out!(
                "{}",
                hex_encode(&keyfile::read_encryption(file)?.public_key())
            );
        }
    }
    Ok(())
}

/// Writes `text` to a new file at `path` that only its owner can read: created so, not
/// narrowed after, so no moment exists when others could open it.
fn write_private(path: &std::path::Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

pub(super) fn run(args: &InitArgs) -> Result<()> {
    let country_ok =
        args.country.len() == 2 && args.country.bytes().all(|b| b.is_ascii_uppercase());
    if !country_ok {
        bail!(
            "--country {:?}: expected two upper-case letters (FR, DE, SG, EU, XX)",
            args.country
        );
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let config_path = args.dir.join("threatmesh.toml");
    if config_path.exists() {
        bail!(
            "{} exists already: this directory holds a node",
            config_path.display()
        );
    }
    let org = match &args.org_key {
        Some(path) => keyfile::read(path)?,
        None => {
            let key = keyfile::generate().context("no randomness from the operating system")?;
            keyfile::write(&args.dir.join("org.key"), &key)?;
            key
        }
    };
    // Every node of the organisation opens sealed bundles with the same key, so a second
    // node is given the first one's.
    let encryption = match &args.encryption_key {
        Some(path) => {
            let key = keyfile::read_encryption(path)?;
            keyfile::write_encryption(&args.dir.join("encryption.key"), &key)?;
            key
        }
        None => {
            let key = keyfile::generate_encryption()
                .context("no randomness from the operating system")?;
            keyfile::write_encryption(&args.dir.join("encryption.key"), &key)?;
            key
        }
    };
    let node = keyfile::generate().context("no randomness from the operating system")?;
    keyfile::write(&args.dir.join("node.key"), &node)?;
    let node_public = PublicKey::of(&node);
    let now = super::now();
    let until = Timestamp(
        now.0
            .saturating_add(args.valid_days.saturating_mul(86_400_000)),
    );
    let member = Member {
        encryption_key: Some(encryption.public_key()),
        ..Member::founding(
            &org,
            args.org_name.clone(),
            args.country.clone(),
            node_public,
            now,
            until,
        )
    };
    let member_path = args.dir.join("member.json");
    std::fs::write(&member_path, serde_json::to_string_pretty(&member)?)
        .with_context(|| format!("writing {}", member_path.display()))?;
    let mut token = [0u8; 24];
    getrandom::fill(&mut token).context("no randomness from the operating system")?;
    write_private(
        &config_path,
        &config::template(&hex_encode(&token), &args.api_listen, &args.listen),
    )?;
    config::prepare_data_dir(&args.dir.join("data"))?;

    out!("organisation {} ({})", args.org_name, member.org);
    out!("node key     {}", node_public);
    out!("peer id      {}", super::peer_id(&node_public));
    out!();
    out!("Files in {}:", args.dir.display());
    if args.org_key.is_none() {
        out!(
            "  org.key          the organisation root key: move it offline once the charter is signed"
        );
    }
    out!("  node.key         this node's key (mode 0600)");
    out!(
        "  encryption.key   the organisation's key for sealed bundles (mode 0600; every node of it needs it)"
    );
    out!("  member.json      this organisation and its node certificate, for the stewards");
    out!("  threatmesh.toml  the node's configuration (holds the API token; mode 0600)");
    out!("  data/            the store (mode 0700: it holds the bundles opened for you)");
    out!();
    out!("Next: send member.json to the federation's stewards (`threatmesh charter admit`),");
    out!("then set node.federation and node.charter_file in threatmesh.toml and run");
    out!("`threatmesh run --config {}`.", config_path.display());
    Ok(())
}
