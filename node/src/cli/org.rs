//! `threatmesh org`: the organisation's root key, made and kept away from its nodes.
//!
//! The root key certifies the organisation's node keys; whoever holds it can have nodes
//! admitted in the organisation's name. So it lives in a directory of its own, on a
//! machine that is not a node (ideally offline): `org init` makes it there with a profile
//! (`org.json`: the organisation's id, name and country). A node is set up with `init`,
//! which writes only the node's keys and a certificate request; the request is carried
//! to the root key's machine, `org certify` signs the node certificate into the member
//! file, and only that file goes back to the node and to the stewards.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use serde::{Deserialize, Serialize};
use threatmesh_protocol::charter::{Member, NodeCertificate};
use threatmesh_protocol::{PublicKey, SigningKey, Timestamp};

use crate::keyfile;

/// The root key's file in an organisation directory.
pub(super) const ORG_KEY: &str = "org.key";
/// The organisation's profile in its directory.
const PROFILE: &str = "org.json";
/// The certificate request `init` writes into a node's directory.
pub(super) const REQUEST: &str = "certificate-request.json";
/// Largest request or profile file read (they hold two keys and a name).
const MAX_SMALL_FILE_BYTES: u64 = 64 * 1024;
/// Largest member file read (a member with many node certificates and addresses).
const MAX_MEMBER_FILE_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, Subcommand)]
pub(super) enum OrgCommand {
    /// Make the organisation's root key (org.key, mode 0600) and profile (org.json) in a
    /// directory of their own, on a machine that is not a node, ideally offline. Prints
    /// the organisation's id.
    Init {
        /// The organisation's directory (not a node's).
        #[arg(long)]
        dir: PathBuf,
        /// The organisation's name as the charter will show it (`CERT-FR`).
        #[arg(long)]
        org_name: String,
        /// ISO 3166-1 alpha-2 country code (`FR`), or `EU`/`XX` for international bodies.
        #[arg(long)]
        country: String,
    },
    /// Certify a node: sign the certificate a node's request (`certificate-request.json`,
    /// written by `threatmesh init`) asks for, into a member file. Bring that member file
    /// to the node's directory and to the stewards; the root key stays here.
    Certify {
        /// The organisation's directory (made by `org init`).
        #[arg(long)]
        dir: PathBuf,
        /// The node's certificate request.
        #[arg(long)]
        request: PathBuf,
        /// The organisation's member file so far, to add this node to (its other nodes'
        /// certificates are kept). Without it, a new member file is made.
        #[arg(long)]
        member: Option<PathBuf>,
        /// How long the node certificate is valid, in days.
        #[arg(long, default_value_t = 365)]
        valid_days: u64,
        /// Where to write the member file.
        #[arg(long)]
        out: PathBuf,
    },
}

/// The organisation as its directory describes it.
#[derive(Debug, Serialize, Deserialize)]
struct Profile {
    /// The root public key: the organisation's id.
    org: PublicKey,
    name: String,
    country: String,
}

/// What a node asks its organisation to certify.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct CertificateRequest {
    /// The node key to certify.
    pub(super) node: PublicKey,
    /// The public half of the encryption key the node holds, for the member file.
    #[serde(with = "threatmesh_protocol::crypto::hex_serde::array")]
    pub(super) encryption_key: [u8; 32],
}

/// Refuses anything but two upper-case letters.
pub(super) fn check_country(country: &str) -> Result<()> {
    if country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()) {
        return Ok(());
    }
    bail!("--country {country:?}: expected two upper-case letters (FR, DE, SG, EU, XX)")
}

/// A certificate for `node` by `org`, valid from now for `valid_days`.
pub(super) fn certificate(org: &SigningKey, node: PublicKey, valid_days: u64) -> NodeCertificate {
    let now = super::now();
    let until = Timestamp(now.0.saturating_add(valid_days.saturating_mul(86_400_000)));
    NodeCertificate::issue(org, node, now, until)
}

/// A new member file's member: `org` with one node, `certificate`, and `encryption_key`.
pub(super) fn member(
    org: &SigningKey,
    name: &str,
    country: &str,
    certificate: NodeCertificate,
    encryption_key: [u8; 32],
) -> Member {
    let founding = Member::founding(
        org,
        name,
        country,
        certificate.node,
        certificate.valid_from,
        certificate.valid_until,
    );
    Member {
        nodes: vec![certificate],
        encryption_key: Some(encryption_key),
        ..founding
    }
}

pub(super) fn run(command: &OrgCommand) -> Result<()> {
    match command {
        OrgCommand::Init {
            dir,
            org_name,
            country,
        } => init(dir, org_name, country),
        OrgCommand::Certify {
            dir,
            request,
            member,
            valid_days,
            out,
        } => certify(dir, request, member.as_deref(), *valid_days, out),
    }
}

fn init(dir: &Path, name: &str, country: &str) -> Result<()> {
    check_country(country)?;
    if dir.join("threatmesh.toml").exists() {
        bail!(
            "{} holds a node: the root key is kept away from nodes; choose another directory",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let profile_path = dir.join(PROFILE);
    if profile_path.exists() {
        bail!(
            "{} exists already: this directory holds an organisation",
            profile_path.display()
        );
    }
    let key = keyfile::generate().context("no randomness from the operating system")?;
    keyfile::write(&dir.join(ORG_KEY), &key)?;
    let profile = Profile {
        org: PublicKey::of(&key),
        name: name.to_owned(),
        country: country.to_owned(),
    };
    std::fs::write(&profile_path, serde_json::to_string_pretty(&profile)?)
        .with_context(|| format!("writing {}", profile_path.display()))?;
    out!("organisation {} ({})", profile.name, profile.org);
    out!();
    out!("Files in {}:", dir.display());
    out!("  org.key   the organisation root key (mode 0600): keep it here, off every node");
    out!("  org.json  the organisation's id, name and country");
    out!();
    out!("Next: on each node, `threatmesh init --dir NODE-DIR`; bring its");
    out!("certificate-request.json here and run");
    out!(
        "`threatmesh org certify --dir {} --request certificate-request.json --out member.json`.",
        dir.display()
    );
    Ok(())
}

fn certify(
    dir: &Path,
    request_path: &Path,
    existing: Option<&Path>,
    valid_days: u64,
    out: &Path,
) -> Result<()> {
    let key = keyfile::read(&dir.join(ORG_KEY))?;
    let profile: Profile = read_json(&dir.join(PROFILE), MAX_SMALL_FILE_BYTES)
        .context("reading the organisation's profile (made by `threatmesh org init`)")?;
    if profile.org != PublicKey::of(&key) {
        bail!(
            "{} does not belong to the root key {}: the directory is inconsistent",
            dir.join(PROFILE).display(),
            dir.join(ORG_KEY).display()
        );
    }
    let request: CertificateRequest = read_json(request_path, MAX_SMALL_FILE_BYTES)
        .context("reading the certificate request (written by `threatmesh init`)")?;
    let certificate = certificate(&key, request.node, valid_days);
    let member = match existing {
        None => member(
            &key,
            &profile.name,
            &profile.country,
            certificate,
            request.encryption_key,
        ),
        Some(path) => {
            let mut member: Member = read_json(path, MAX_MEMBER_FILE_BYTES)?;
            if member.org != profile.org {
                bail!(
                    "{} is the member file of organisation {}, not of {}",
                    path.display(),
                    member.org,
                    profile.org
                );
            }
            if member.encryption_key != Some(request.encryption_key) {
                bail!(
                    "the node holds another encryption key than {} lists: every node of an \
                     organisation needs the same one; set the node up with \
                     `threatmesh init --encryption-key` from another node's encryption.key",
                    path.display()
                );
            }
            member.nodes.retain(|cert| cert.node != request.node);
            member.nodes.push(certificate);
            member
        }
    };
    std::fs::write(out, serde_json::to_string_pretty(&member)?)
        .with_context(|| format!("writing {}", out.display()))?;
    out!(
        "certified node {} ({})",
        request.node,
        super::peer_id(&request.node)
    );
    out!(
        "for organisation {} ({}), valid {} days",
        profile.name,
        profile.org,
        valid_days
    );
    out!();
    out!(
        "Check that node key against what `threatmesh init` printed on the node. Then bring {}",
        out.display()
    );
    out!("to the node's directory (as member.json) and to the stewards (`threatmesh charter");
    out!("admit`). The root key stays here.");
    Ok(())
}

/// Reads a JSON file of at most `max_bytes`.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path, max_bytes: u64) -> Result<T> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if size > max_bytes {
        bail!(
            "{} is {size} bytes, more than the {max_bytes} such a file can need",
            path.display()
        );
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid", path.display()))
}

/// Writes a node's certificate request into its directory.
pub(super) fn write_request(dir: &Path, request: &CertificateRequest) -> Result<PathBuf> {
    let path = dir.join(REQUEST);
    std::fs::write(&path, serde_json::to_string_pretty(request)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
