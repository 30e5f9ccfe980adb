//! `threatmesh archive export` and `archive import`: air-gap archives through a running
//! node's HTTP API.
//!
//! An export streams `GET /api/v1/archive` into a temporary file beside `--out`, reading
//! it through the archive decoder on the way (so a connection cut mid-export, or a node
//! failing mid-way, is caught: the archive would lack its trailer), then syncs it and
//! renames it into place: `--out` is either a whole archive or untouched. An import
//! streams the file to `POST /api/v1/archive` and prints the node's report.

use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use serde_json::Value as Json;
use threatmesh_protocol::archive::Decoder;

use super::client::{ApiArgs, progress};
use crate::api::archive::MEDIA_TYPE;

/// Air-gap transfer: every entry exactly as signed, with the charters that authorise it,
/// in one file to carry across a one-way link and import on a node with no network.
#[derive(Debug, Subcommand)]
pub(super) enum ArchiveCommand {
    /// Write an archive of what a running node holds (a read token may).
    ///
    /// The archive holds the node's charters, then the entries it accepted (all, or those
    /// selected) exactly as signed, with a header naming the federation and a SHA-256
    /// over the whole file.
    Export(ExportArgs),
    /// Verify an archive and store what is new in a running node (full token).
    ///
    /// Every charter and entry is verified as if a peer had sent it. Prints what was new,
    /// already known and refused (and why). Running it again changes nothing; an import
    /// that was interrupted can simply be run again. A truncated, altered or
    /// foreign-federation archive is refused at the byte where the fault is, keeping
    /// what verified before it.
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub(super) struct ExportArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// The archive to write. Written to a temporary file beside it and renamed into place
    /// once complete, so it is never left half-written.
    #[arg(long)]
    out: PathBuf,
    /// Only entries the node accepted after this time: RFC 3339 (2026-12-01T00:00:00Z) or
    /// milliseconds since the epoch. For periodic transfers, pass the time of the previous
    /// export: entries that reached the node late are included whatever their creation
    /// time.
    #[arg(long)]
    since: Option<String>,
    /// Only entries of this member organisation's nodes: its id (hex) or its name as in
    /// the charter (`threatmesh charter show`). Repeat for several.
    #[arg(long = "organisation", alias = "organization")]
    organisations: Vec<String>,
}

#[derive(Debug, Args)]
pub(super) struct ImportArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Print the node's JSON report instead of a summary.
    #[arg(long)]
    json: bool,
    /// The archive to import (`-` for standard input).
    file: PathBuf,
}

pub(super) fn run(command: &ArchiveCommand) -> Result<()> {
    match command {
        ArchiveCommand::Export(args) => export(args),
        ArchiveCommand::Import(args) => import(args),
    }
}

/// The export's query string.
fn query(args: &ExportArgs) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if let Some(since) = &args.since {
        query.append_pair("since", since);
    }
    for org in &args.organisations {
        query.append_pair("organisation", org);
    }
    let query = query.finish();
    if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    }
}

fn export(args: &ExportArgs) -> Result<()> {
    let url = args.api.url(&format!("/api/v1/archive{}", query(args)));
    let response = super::client::agent()
        .get(&url)
        .header("Authorization", &args.api.authorization()?)
        .call()
        .with_context(|| format!("cannot reach the node at {}", args.api.api))?;
    let status = response.status();
    if !status.is_success() {
        let text = response
            .into_body()
            .with_config()
            .limit(1024 * 1024)
            .read_to_string()
            .unwrap_or_default();
        bail!("the node answered {status}: {}", error_of(&text));
    }
    let held = response
        .headers()
        .get("x-threatmesh-entries-held")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    let mut body = response
        .into_body()
        .into_with_config()
        .limit(u64::MAX)
        .reader();
    let temporary = temporary_beside(&args.out)?;
    let written = write_checked(&mut body, &temporary, held);
    let (entries, charters, bytes) = match written {
        Ok(counts) => counts,
        Err(error) => {
            let _ = std::fs::remove_file(&temporary);
            return Err(error);
        }
    };
    std::fs::rename(&temporary, &args.out)
        .with_context(|| format!("renaming {} to {}", temporary.display(), args.out.display()))?;
    out!(
        "exported {entries} entries and {charters} charters ({bytes} bytes) to {}",
        args.out.display()
    );
    Ok(())
}

/// A temporary file's path beside `out` (same file system, so the rename is atomic).
fn temporary_beside(out: &Path) -> Result<PathBuf> {
    let name = out
        .file_name()
        .with_context(|| format!("--out {}: not a file name", out.display()))?;
    let mut temporary = name.to_os_string();
    temporary.push(format!(".partial-{}", std::process::id()));
    Ok(out.with_file_name(temporary))
}

/// Copies the archive from `body` to `path`, decoding it on the way; the entries,
/// charters and bytes, once the whole archive, trailer included, was read and synced.
fn write_checked(body: &mut dyn Read, path: &Path, held: u64) -> Result<(u64, u64, u64)> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut file = std::io::BufWriter::with_capacity(1024 * 1024, file);
    let mut decoder = Decoder::new();
    let bar = progress(held, "entries (of those held)");
    let mut buffer = vec![0; 256 * 1024];
    let mut bytes = 0u64;
    loop {
        let read = match body.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => {
                return Err(error).context(format!(
                    "the node's answer stopped after {bytes} bytes: no archive written"
                ));
            }
        };
        let chunk = &buffer[..read];
        bytes += read as u64;
        decoder.feed(chunk);
        while decoder
            .next_frame()
            .context("the node sent a damaged archive: no archive written")?
            .is_some()
        {}
        bar.set_position(decoder.entries());
        file.write_all(chunk)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    bar.finish_and_clear();
    decoder
        .finish()
        .context("the node's archive ended early: no archive written")?;
    let file = file
        .into_inner()
        .map_err(|error| error.into_error())
        .with_context(|| format!("writing {}", path.display()))?;
    file.sync_all()
        .with_context(|| format!("syncing {}", path.display()))?;
    Ok((decoder.entries(), decoder.charters(), bytes))
}

/// The `error` of a JSON error answer, or the text.
fn error_of(text: &str) -> String {
    match serde_json::from_str::<Json>(text) {
        Ok(answer) if answer.get("error").is_some_and(Json::is_string) => {
            super::client::error_message(&answer)
        }
        _ => text.to_owned(),
    }
}

/// Counts bytes read, for the upload's progress.
struct Counted<R> {
    inner: R,
    bar: indicatif::ProgressBar,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.bar.inc(read as u64);
        Ok(read)
    }
}

fn import(args: &ImportArgs) -> Result<()> {
    let (reader, size): (Box<dyn Read>, u64) = if args.file.as_os_str() == "-" {
        (Box::new(std::io::stdin().lock()), 0)
    } else {
        let file = std::fs::File::open(&args.file)
            .with_context(|| format!("opening {}", args.file.display()))?;
        let size = file.metadata().map_or(0, |metadata| metadata.len());
        (Box::new(file), size)
    };
    let bar = progress(size, "bytes");
    let mut reader = Counted {
        inner: std::io::BufReader::with_capacity(1024 * 1024, reader),
        bar: bar.clone(),
    };
    let response = super::client::agent()
        .post(&args.api.url("/api/v1/archive"))
        .header("Authorization", &args.api.authorization()?)
        .header("Content-Type", MEDIA_TYPE)
        .send(ureq::SendBody::from_reader(&mut reader))
        .with_context(|| {
            format!(
                "sending {} to the node at {} (an import cut off can be run again)",
                args.file.display(),
                args.api.api
            )
        })?;
    bar.finish_and_clear();
    let status = response.status();
    let text = response
        .into_body()
        .with_config()
        .limit(16 * 1024 * 1024)
        .read_to_string()
        .context("reading the node's report")?;
    let Ok(report) = serde_json::from_str::<Json>(&text) else {
        bail!("the node answered {status}: {text}");
    };
    if report.get("complete").is_none() {
        bail!("the node answered {status}: {}", error_of(&text));
    }
    if args.json {
        out!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    if let Some(error) = report.get("error").and_then(Json::as_str) {
        bail!("import stopped {error}; what verified before that point was kept");
    }
    Ok(())
}

fn print_report(report: &Json) {
    let header = &report["header"];
    if header.is_object() {
        out!(
            "archive of federation {} exported by node {} (organisation {}) at {}",
            header["federation"].as_str().unwrap_or("?"),
            header["node"].as_str().unwrap_or("?"),
            header["organisation"].as_str().unwrap_or("none"),
            header["created"].as_u64().map_or_else(
                || "?".to_owned(),
                |millis| {
                    crate::formats::rfc3339::format(threatmesh_protocol::Timestamp(millis))
                }
            ),
        );
    }
    let counts = |what: &Json| {
        format!(
            "{} new, {} already known, {} refused",
            what["new"], what["known"], what["refused"]
        )
    };
    out!("charters: {}", counts(&report["charters"]));
    for charter in report["charters"]["charters"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if charter["outcome"] == "refused" {
            out!(
                "  charter version {} refused: {}",
                charter["version"],
                charter["reason"].as_str().unwrap_or("?")
            );
        }
    }
    out!("entries: {}", counts(&report["entries"]));
    for refused in report["entries"]["refused_entries"]
        .as_array()
        .into_iter()
        .flatten()
    {
        out!(
            "  entry {} (byte {}) refused, {}: {}",
            refused["id"].as_str().unwrap_or("?"),
            refused["position"],
            refused["reason"].as_str().unwrap_or("?"),
            refused["detail"].as_str().unwrap_or("?"),
        );
    }
    let listed = report["entries"]["refused_entries"]
        .as_array()
        .map_or(0, Vec::len) as u64;
    let refused = report["entries"]["refused"].as_u64().unwrap_or(0);
    if refused > listed {
        out!("  ... and {} more refused", refused - listed);
    }
}
