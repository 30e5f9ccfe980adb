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
    /// Print the public key of an organisation encryption key file (its current key; with
    /// --all, every key of the keyring, the current first).
    ShowEncryption {
        /// The key file.
        file: PathBuf,
        /// Every key of the keyring, not only the current one.
        #[arg(long)]
        all: bool,
    },
    /// Rotate the organisation encryption key: a new key becomes the current one of the
    /// keyring FILE, and the earlier ones stay in it, so bundles sealed to them still open.
    /// Prints the new public key: the stewards list it in a newer charter (`charter
    /// admit` with the member file's `encryption_key` set to it). A running node picks the
    /// new key up within seconds.
    RotateEncryption {
        /// The keyring (the node's `encryption_key_file`).
        file: PathBuf,
    },
    /// Add the keys of another key file (a key another node of the organisation made, or
    /// one this node lost) to the keyring FILE, after its current key. A running node
    /// picks them up within seconds and opens the sealed entries it stored unread.
    AddEncryption {
        /// The keyring (the node's `encryption_key_file`).
        file: PathBuf,
        /// The key file whose keys are added.
        #[arg(long)]
        from: PathBuf,
        /// Make the first key of --from the current key.
        #[arg(long)]
        current: bool,
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
        KeyCommand::ShowEncryption { file, all } => {
            let ring = keyfile::read_keyring(file)?;
            let shown = if *all { ring.len() } else { 1 };
            for key in ring.iter().take(shown) {
                out!("{}", hex_encode(&key.public_key()));
            }
        }
        KeyCommand::RotateEncryption { file } => {
            let key = keyfile::generate_encryption()
                .context("no randomness from the operating system")?;
            let ring = keyfile::add_to_keyring(file, &key, true)?;
            out!("{}", hex_encode(&key.public_key()));
            eprintln!(
                "{} now holds {} key(s), the new one first. Have the stewards list its public key \
                 (above) as this organisation's encryption_key in a newer charter.",
                file.display(),
                ring.len()
            );
        }
        KeyCommand::AddEncryption {
            file,
            from,
            current,
        } => {
            let added = keyfile::read_keyring(from)?;
            // Added last to first, so that with --current the first of --from ends first.
            let mut ring = Vec::new();
            for (index, key) in added.iter().enumerate().rev() {
                ring = keyfile::add_to_keyring(file, key, *current && index == 0)?;
            }
            out!(
                "{} now holds {} key(s); a running node picks them up within seconds",
                file.display(),
                ring.len()
            );
        }
    }
    Ok(())
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
    // Every node of the organisation opens sealed bundles with the same keys, so a second
    // node is given the first one's keyring, earlier keys included.
    let encryption = match &args.encryption_key {
        Some(path) => {
            let ring = keyfile::read_keyring(path)?;
            let target = args.dir.join("encryption.key");
            for (index, key) in ring.iter().enumerate() {
                keyfile::add_to_keyring(&target, key, index == 0)?;
            }
            ring.first()
                .cloned()
                .with_context(|| format!("{} holds no key", path.display()))?
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
    std::fs::write(
        &config_path,
        config::template(&hex_encode(&token), &args.api_listen, &args.listen),
    )
    .with_context(|| format!("writing {}", config_path.display()))?;
    std::fs::create_dir_all(args.dir.join("data"))?;

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
    out!("  threatmesh.toml  the node's configuration (holds the API token)");
    out!();
    out!("Next: send member.json to the federation's stewards (`threatmesh charter admit`),");
    out!("then set node.federation and node.charter_file in threatmesh.toml and run");
    out!("`threatmesh run --config {}`.", config_path.display());
    Ok(())
}
