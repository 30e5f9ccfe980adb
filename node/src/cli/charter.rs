//! `threatmesh charter`: the stewards' workflow on charter files.
//!
//! A charter file is JSON: the charter and the steward signatures collected so far. A
//! proposal is made with `new` (genesis) or from the charter in force with `admit`,
//! `suspend` or `revoke`; each steward adds a signature with `sign`; `verify` says whether
//! it is valid, and for a genesis prints the federation's id.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use threatmesh_protocol::charter::{Charter, FeedCutoff, Member, Status};
use threatmesh_protocol::{Hash, PublicKey, SignedCharter, Timestamp};

use crate::api::CharterFile;

use crate::keyfile;

#[derive(Debug, Subcommand)]
pub(super) enum CharterCommand {
    /// Propose a genesis charter.
    New {
        /// The federation's name.
        #[arg(long)]
        name: String,
        /// A steward: a public key in hex, or a key file. Repeat for each.
        #[arg(long = "steward", required = true)]
        stewards: Vec<String>,
        /// Signatures needed (a majority of the stewards).
        #[arg(long, default_value_t = 1)]
        threshold: u16,
        /// A member file written by `threatmesh org certify`. Repeat for each. Its `roles`
        /// say what the member may do: `publish`, and `read` (false: its nodes publish but
        /// are sent no entries, only charters; see docs/PROTOCOL.md, "Roles").
        #[arg(long = "member")]
        members: Vec<PathBuf>,
        /// Where to write the proposal.
        #[arg(long)]
        out: PathBuf,
    },
    /// Propose the next version with a new member (or an updated one).
    Admit {
        /// The charter in force.
        #[arg(long)]
        current: PathBuf,
        /// The member file (its `roles`: `publish`, and `read`, false for a member that
        /// publishes but is sent no entries; a connected node of a member that loses
        /// `read` is disconnected and then sent nothing).
        #[arg(long)]
        member: PathBuf,
        /// Where to write the proposal.
        #[arg(long)]
        out: PathBuf,
    },
    /// Propose the next version with a member suspended.
    Suspend(StandingArgs),
    /// Propose the next version with a member revoked.
    Revoke(StandingArgs),
    /// Add a steward's signature to a proposal, in place.
    Sign {
        /// The steward's key file.
        #[arg(long)]
        key: PathBuf,
        /// The proposal.
        file: PathBuf,
    },
    /// Show a charter.
    Show {
        /// The charter file.
        file: PathBuf,
    },
    /// Hand a signed charter to a running node, which checks it against the charter in
    /// force, applies it and gossips it to the federation.
    Push {
        #[command(flatten)]
        api: super::client::ApiArgs,
        /// The signed charter.
        file: PathBuf,
    },
    /// Check a charter: a genesis against its own stewards, or a later version against the
    /// one before it.
    Verify {
        /// The charter file.
        file: PathBuf,
        /// The version before it (for anything but a genesis).
        #[arg(long)]
        previous: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
pub(super) struct StandingArgs {
    /// The charter in force.
    #[arg(long)]
    current: PathBuf,
    /// The member's organisation id (its root public key, hex).
    #[arg(long)]
    org: String,
    /// When it takes effect, in milliseconds since the epoch (default: now).
    #[arg(long)]
    since: Option<u64>,
    /// The last entry accepted from one of its feeds, as NODE:SEQ:ENTRY-ID (hex, decimal,
    /// hex), from a node's `/api/v1/feeds`. Repeat per feed; a feed not named keeps nothing.
    #[arg(long = "cutoff")]
    cutoffs: Vec<String>,
    /// Where to write the proposal.
    #[arg(long)]
    out: PathBuf,
}

/// Reads a charter file; the signatures are not checked here.
pub(crate) fn load(path: &Path) -> Result<SignedCharter> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: CharterFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a charter file", path.display()))?;
    file.into_signed()
        .with_context(|| format!("{} holds an invalid charter", path.display()))
}

fn save(path: &Path, charter: &SignedCharter) -> Result<()> {
    std::fs::write(
        path,
        serde_json::to_string_pretty(&CharterFile::of(charter))?,
    )
    .with_context(|| format!("writing {}", path.display()))
}

fn member(path: &Path) -> Result<Member> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a member file", path.display()))
}

fn steward(text: &str) -> Result<PublicKey> {
    if let Ok(key) = text.parse::<PublicKey>() {
        return Ok(key);
    }
    Ok(keyfile::public(Path::new(text))?)
}

fn propose(charter: Charter, out: &Path) -> Result<()> {
    let proposal = SignedCharter::propose(charter)?;
    save(out, &proposal)?;
    out!(
        "proposal for version {} written to {}: it needs {} steward signature(s)",
        proposal.charter().version,
        out.display(),
        proposal.charter().threshold
    );
    Ok(())
}

/// The version after `current`, unsigned.
fn successor(current: &SignedCharter) -> Charter {
    let mut next = current.charter().clone();
    next.version += 1;
    next.previous = Some(current.id());
    next.federation = current.federation();
    next.issued = super::now();
    next
}

pub(super) fn run(command: &CharterCommand) -> Result<()> {
    match command {
        CharterCommand::New {
            name,
            stewards,
            threshold,
            members,
            out,
        } => {
            let charter = Charter {
                federation: Hash::default(),
                name: name.clone(),
                version: 1,
                previous: None,
                issued: super::now(),
                stewards: stewards.iter().map(|s| steward(s)).collect::<Result<_>>()?,
                threshold: *threshold,
                members: members.iter().map(|m| member(m)).collect::<Result<_>>()?,
            };
            propose(charter, out)
        }
        CharterCommand::Admit {
            current,
            member: path,
            out,
        } => {
            let current = load(current)?;
            let member = member(path)?;
            let mut next = successor(&current);
            next.members.retain(|existing| existing.org != member.org);
            next.members.push(member);
            propose(next, out)
        }
        CharterCommand::Suspend(args) => standing(args, |since| Status::Suspended { since }),
        CharterCommand::Revoke(args) => standing(args, |since| Status::Revoked { since }),
        CharterCommand::Sign { key, file } => {
            let mut proposal = load(file)?;
            let key = keyfile::read(key)?;
            let public = PublicKey::of(&key);
            proposal.sign(&key);
            save(file, &proposal)?;
            out!(
                "signed by {public}: {} of {} signatures",
                proposal.signatures().len(),
                proposal.charter().threshold
            );
            Ok(())
        }
        CharterCommand::Push { api, file } => {
            let charter = load(file)?;
            let body = serde_json::to_value(CharterFile::of(&charter))?;
            let answer = super::client::call(api, "POST", "/api/v1/charter", Some(&body))?;
            out!(
                "the node applied version {} and is sharing it",
                answer["version"]
            );
            Ok(())
        }
        CharterCommand::Show { file } => {
            let charter = load(file)?;
            show(&charter);
            Ok(())
        }
        CharterCommand::Verify { file, previous } => {
            let charter = load(file)?;
            match previous {
                None if charter.charter().version == 1 => {
                    charter.verify_genesis(charter.id())?;
                    out!("valid genesis charter");
                    out!("federation: {}", charter.id());
                }
                None => bail!(
                    "version {} is checked against the version before it: give --previous",
                    charter.charter().version
                ),
                Some(previous) => {
                    charter.verify_successor(&load(previous)?)?;
                    out!(
                        "valid version {} of federation {}",
                        charter.charter().version,
                        charter.federation()
                    );
                }
            }
            Ok(())
        }
    }
}

fn standing(args: &StandingArgs, status: fn(Timestamp) -> Status) -> Result<()> {
    let current = load(&args.current)?;
    let org: PublicKey = args
        .org
        .parse()
        .context("--org: expected an organisation id in hex")?;
    let cutoffs = args
        .cutoffs
        .iter()
        .map(|text| parse_cutoff(text).with_context(|| format!("--cutoff {text:?}")))
        .collect::<Result<Vec<_>>>()?;
    let mut next = successor(&current);
    let Some(member) = next.members.iter_mut().find(|member| member.org == org) else {
        bail!("no member with organisation id {org}");
    };
    member.status = status(args.since.map_or_else(super::now, Timestamp));
    member.cutoffs = cutoffs;
    propose(next, &args.out)
}

fn parse_cutoff(text: &str) -> Result<FeedCutoff> {
    let mut parts = text.split(':');
    let (Some(node), Some(seq), Some(id), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        bail!("expected NODE:SEQ:ENTRY-ID");
    };
    Ok(FeedCutoff {
        node: node.parse().context("node key")?,
        last_seq: seq.parse().context("seq")?,
        last_id: Some(id.parse().context("entry id")?),
    })
}

fn show(signed: &SignedCharter) {
    let charter = signed.charter();
    out!(
        "{} (version {}, federation {})",
        charter.name,
        charter.version,
        signed.federation()
    );
    out!("id {}", signed.id());
    out!(
        "stewards: {} of {} must sign; signed by {}",
        charter.threshold,
        charter.stewards.len(),
        signed.signatures().len()
    );
    for member in &charter.members {
        let status = match member.status {
            Status::Active => "active".to_owned(),
            Status::Suspended { since } => format!("suspended since {since}"),
            Status::Revoked { since } => format!("revoked since {since}"),
        };
        out!(
            "  {} ({}) {} {}",
            member.name,
            member.country,
            member.org.fmt_short(),
            status
        );
        for cert in &member.nodes {
            out!("    node {}", super::peer_id(&cert.node));
        }
    }
}
