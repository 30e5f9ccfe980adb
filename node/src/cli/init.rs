//! `threatmesh init` and `threatmesh key`: everything a node needs on disk.
//!
//! `init` writes the node's keys, its configuration and a certificate request; the
//! organisation's root key certifies it elsewhere (`org.rs`). `init --with-org-key` does
//! both in one directory, for testnets.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use threatmesh_protocol::PublicKey;
use threatmesh_protocol::crypto::hex_encode;

use super::org;
use crate::{config, keyfile};

#[derive(Debug, Args)]
pub(super) struct InitArgs {
    /// Directory to create the node's files in.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Testnets and labs only: also make the organisation root key, in --dir beside the
    /// node (org.key), and certify the node with it at once (member.json). A root key on
    /// a node is lost with the node; in production make it elsewhere with `threatmesh org
    /// init` and certify the node with `threatmesh org certify`.
    #[arg(long, conflicts_with = "org_key", requires_all = ["org_name", "country"])]
    with_org_key: bool,
    /// Certify the node at once with this existing root key, read where it is and not
    /// copied (a root key kept on this machine, for a testnet or lab).
    #[arg(long, requires_all = ["org_name", "country"])]
    org_key: Option<PathBuf>,
    /// With --with-org-key or --org-key: the organisation's name as the charter will show
    /// it (`CERT-FR`). Otherwise it is given to `threatmesh org init`.
    #[arg(long)]
    org_name: Option<String>,
    /// With --with-org-key or --org-key: ISO 3166-1 alpha-2 country code (`FR`), or
    /// `EU`/`XX` for international bodies.
    #[arg(long)]
    country: Option<String>,
    /// Use this existing organisation encryption key file (another node of the
    /// organisation has it; all its keys are copied) instead of creating one.
    #[arg(long)]
    encryption_key: Option<PathBuf>,
    /// With --with-org-key or --org-key: how long the node certificate is valid, in days.
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
    /// key, for a member file's `encryption_key`. To rotate a node's key use
    /// `rotate-encryption`, which keeps the earlier keys so old bundles still open.
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
    // The one-step setup: with a root key at hand, the name and country it certifies.
    let one_step = match (&args.org_name, &args.country) {
        (Some(name), Some(country)) if args.with_org_key || args.org_key.is_some() => {
            org::check_country(country)?;
            Some((name, country))
        }
        (None, None) => None,
        _ => bail!(
            "--org-name and --country belong to the organisation: give them to \
             `threatmesh org init` where the root key is kept (not on a node), or add \
             --with-org-key to make the root key here, for a testnet"
        ),
    };
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let config_path = args.dir.join("threatmesh.toml");
    if config_path.exists() {
        bail!(
            "{} exists already: this directory holds a node",
            config_path.display()
        );
    }
    if args.dir.join("org.json").exists() {
        bail!(
            "{} holds an organisation root key: set the node up in another directory",
            args.dir.display()
        );
    }
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
    let member = match one_step {
        Some((name, country)) => {
            let org = match &args.org_key {
                Some(path) => keyfile::read(path)?,
                None => {
                    let key =
                        keyfile::generate().context("no randomness from the operating system")?;
                    keyfile::write(&args.dir.join(org::ORG_KEY), &key)?;
                    key
                }
            };
            let certificate = org::certificate(&org, node_public, args.valid_days);
            let member = org::member(&org, name, country, certificate, encryption.public_key());
            let member_path = args.dir.join("member.json");
            std::fs::write(&member_path, serde_json::to_string_pretty(&member)?)
                .with_context(|| format!("writing {}", member_path.display()))?;
            Some(member)
        }
        None => {
            org::write_request(
                &args.dir,
                &org::CertificateRequest {
                    node: node_public,
                    encryption_key: encryption.public_key(),
                },
            )?;
            None
        }
    };
    let mut token = [0u8; 24];
    getrandom::fill(&mut token).context("no randomness from the operating system")?;
    write_private(
        &config_path,
        &config::template(&hex_encode(&token), &args.api_listen, &args.listen),
    )?;
    config::prepare_data_dir(&args.dir.join("data"))?;

    if let (Some(member), Some((name, _))) = (&member, one_step) {
        out!("organisation {name} ({})", member.org);
    }
    out!("node key     {}", node_public);
    out!("peer id      {}", super::peer_id(&node_public));
    out!();
    out!("Files in {}:", args.dir.display());
    if args.with_org_key {
        out!(
            "  org.key          the organisation root key: for testnets only; a production root key is kept off the node"
        );
    }
    out!("  node.key         this node's key (mode 0600)");
    out!(
        "  encryption.key   the organisation's keyring for sealed bundles (mode 0600; every node of it needs it)"
    );
    if member.is_some() {
        out!("  member.json      this organisation and its node certificate, for the stewards");
    } else {
        out!(
            "  {}  this node's key and encryption key, for the organisation to certify",
            org::REQUEST
        );
    }
    out!(
        "  threatmesh.toml  the node's configuration (holds the API token; mode 0600; add read-only tokens to api.read_tokens)"
    );
    out!("  data/            the store (mode 0700: it holds the bundles opened for you)");
    out!();
    if member.is_none() {
        out!(
            "Next: bring {} to where the organisation root key is kept and run",
            org::REQUEST
        );
        out!(
            "`threatmesh org certify --dir ORG-DIR --request {} --out member.json`",
            org::REQUEST
        );
        out!("(`threatmesh org init` makes the root key there, once). Bring member.json back");
        out!("here and to the federation's stewards (`threatmesh charter admit`).");
    } else {
        out!("Next: send member.json to the federation's stewards (`threatmesh charter admit`).");
    }
    out!("Then set node.federation and node.charter_file in threatmesh.toml and run");
    out!("`threatmesh run --config {}`.", config_path.display());
    Ok(())
}
