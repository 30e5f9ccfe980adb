//! `threatmesh import` and `threatmesh export --format stix|misp|csv`: files in the
//! formats CERTs already use, to and from a running node.
//!
//! Import sends the file as it is to the node's `/api/v1/import/{format}` and prints the
//! importer's report. Export pages through the node's entries and converts them here, so
//! an export of millions of indicators streams to disk instead of being built in the
//! node's memory; organisations are named from the node's charter.

use std::collections::{BTreeMap, HashSet};
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::{Args, ValueEnum};
use serde_json::Value as Json;
use threatmesh_protocol::{Charter, Entry, Hash};

use super::client::{ApiArgs, call, call_raw, progress};
use crate::formats::{self, Publisher, csv, marks, stix};

/// The formats files come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum FileFormat {
    /// A STIX 2.1 (or 2.0) bundle.
    Stix,
    /// A MISP event (or a REST search answer, or a list of events).
    Misp,
    /// CSV, or a plain list of values one per line.
    Csv,
}

impl FileFormat {
    fn name(self) -> &'static str {
        match self {
            FileFormat::Stix => "stix",
            FileFormat::Misp => "misp",
            FileFormat::Csv => "csv",
        }
    }

    /// The media type the node takes this format's files as.
    fn media_type(self) -> &'static str {
        match self {
            FileFormat::Stix => "application/stix+json",
            FileFormat::Misp => "application/json",
            FileFormat::Csv => "text/csv",
        }
    }
}

#[derive(Debug, Args)]
pub(super) struct ImportArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// The file's format.
    #[arg(long, value_enum)]
    format: FileFormat,
    /// TLP of what the file leaves unmarked (clear, green, amber).
    #[arg(long, default_value = "amber")]
    tlp: String,
    /// Only report what the file holds; publish nothing.
    #[arg(long)]
    dry_run: bool,
    /// CSV: the column of the values, by 0-based position or header name.
    #[arg(long)]
    column: Option<String>,
    /// CSV: the delimiter (`,` `;` `|` or `tab`); detected when not given.
    #[arg(long)]
    delimiter: Option<String>,
    /// CSV: the kind of every value (ipv4, domain, url, sha256, ...); detected per value
    /// when not given.
    #[arg(long)]
    kind: Option<String>,
    /// CSV: whether the first line is a header (detected when not given).
    #[arg(long)]
    header: Option<bool>,
    /// MISP: also import attributes whose `to_ids` is false.
    #[arg(long)]
    include_non_ids: bool,
    /// Publish indicators on a warninglist too (public DNS resolvers, private addresses,
    /// empty-file hashes, top domains, ...). By default they are held back and listed.
    #[arg(long)]
    ignore_warninglists: bool,
    /// The file (`-` for standard input).
    file: PathBuf,
}

/// Characters a query value may hold as they are; others are percent-encoded.
fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

pub(super) fn import(args: &ImportArgs) -> Result<()> {
    let bytes = if args.file.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
            .context("reading standard input")?;
        bytes
    } else {
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?
    };
    let mut query = vec![format!("tlp={}", encode(&args.tlp))];
    if args.dry_run {
        query.push("dry_run=true".into());
    }
    if args.include_non_ids {
        query.push("include_non_ids=true".into());
    }
    if args.ignore_warninglists {
        query.push("ignore_warninglists=true".into());
    }
    for (name, value) in [
        ("column", &args.column),
        ("delimiter", &args.delimiter),
        ("kind", &args.kind),
    ] {
        if let Some(value) = value {
            query.push(format!("{name}={}", encode(value)));
        }
    }
    if let Some(header) = args.header {
        query.push(format!("header={header}"));
    }
    let path = format!("/api/v1/import/{}?{}", args.format.name(), query.join("&"));
    let answer = call_raw(&args.api, &path, args.format.media_type(), bytes)?;
    print_report(&answer);
    // Scripts must see a failure when the node refused to publish part of the file.
    let refused = answer["not_published"].as_array().map_or(0, Vec::len);
    if refused > 0 {
        bail!("the node did not publish {refused} group(s) of items; see above");
    }
    Ok(())
}

/// Prints an import answer for people.
fn print_report(answer: &Json) {
    let report = &answer["report"];
    let count = |field: &str| report[field].as_u64().unwrap_or(0);
    out!(
        "read {}: {} indicators, {} sightings, {} revocations, {} context objects",
        count("read"),
        count("indicators"),
        count("sightings"),
        count("revocations"),
        count("context")
    );
    if let Some(unused) = report["unused"]
        .as_object()
        .filter(|unused| !unused.is_empty())
    {
        let listed: Vec<String> = unused
            .iter()
            .map(|(kind, count)| format!("{kind} ({count})"))
            .collect();
        out!("not used: {}", listed.join(", "));
    }
    let refused = report["refused"].as_array().map_or(&[][..], Vec::as_slice);
    if !refused.is_empty() {
        out!("refused {}:", refused.len());
        for refusal in refused.iter().take(50) {
            out!(
                "  {}: {}",
                refusal["at"].as_str().unwrap_or("?"),
                refusal["reason"].as_str().unwrap_or("?")
            );
        }
        if refused.len() > 50 {
            out!(
                "  ... and {} more (use the API for the full list)",
                refused.len() - 50
            );
        }
    }
    super::client::print_held_back(
        answer["held_back"]
            .as_array()
            .map_or(&[][..], Vec::as_slice),
    );
    if answer["dry_run"] == true {
        out!("dry run: nothing published");
        return;
    }
    for group in answer["published"].as_array().into_iter().flatten() {
        out!(
            "published {} items as {} in {} entries",
            group["items"],
            group["tlp"].as_str().unwrap_or("?"),
            group["entries"].as_array().map_or(0, Vec::len)
        );
    }
    for group in answer["not_published"].as_array().into_iter().flatten() {
        out!(
            "NOT published: {} items as {}: {}",
            group["items"],
            group["tlp"].as_str().unwrap_or("?"),
            group["error"].as_str().unwrap_or("?")
        );
    }
}

/// What `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum ExportFormat {
    /// The entries as the node holds them, one JSON object per line.
    Entries,
    /// One STIX 2.1 bundle.
    Stix,
    /// A MISP feed: a directory with manifest.json, one file per event, hashes.csv.
    Misp,
    /// CSV, one row per indicator.
    Csv,
}

/// The entries of a node, a page at a time, with the publisher of each.
pub(super) struct Pages<'a> {
    api: &'a ApiArgs,
    charter: Charter,
    cursor: Option<String>,
    done: bool,
    bar: Option<indicatif::ProgressBar>,
}

impl<'a> Pages<'a> {
    pub(super) fn new(api: &'a ApiArgs) -> Result<Pages<'a>> {
        let charter = call(api, "GET", "/api/v1/charter", None)?;
        let charter: Charter = serde_json::from_value(charter["charter"].clone())
            .context("reading the node's charter")?;
        Ok(Pages {
            api,
            charter,
            cursor: None,
            done: false,
            bar: None,
        })
    }

    /// The next page of (entry, id, publisher), or `None` after the last.
    pub(super) fn next_page(&mut self) -> Result<Option<Vec<(Entry, Hash, Publisher)>>> {
        if self.done {
            if let Some(bar) = self.bar.take() {
                bar.finish_and_clear();
            }
            return Ok(None);
        }
        let path = match &self.cursor {
            Some(cursor) => format!("/api/v1/entries?cursor={cursor}"),
            None => "/api/v1/entries".to_owned(),
        };
        let page = call(self.api, "GET", &path, None)?;
        let bar = self
            .bar
            .get_or_insert_with(|| progress(page["total"].as_u64().unwrap_or(0), "entries"));
        let mut entries = Vec::new();
        for exported in page["entries"].as_array().into_iter().flatten() {
            let id: Hash = serde_json::from_value(exported["id"].clone())
                .context("reading an entry id from the node")?;
            let entry: Entry = serde_json::from_value(exported.clone())
                .with_context(|| format!("reading entry {id} from the node"))?;
            let opened = if exported["opened"].is_object() {
                let opened = serde_json::from_value(exported["opened"].clone())
                    .with_context(|| format!("reading the opened bundle of entry {id}"))?;
                Some(opened)
            } else {
                None
            };
            // A sealed entry this organisation may read comes with the bundle the node
            // opened; exporters read that. One it may not read stays sealed and exports
            // nothing (it still counts towards a STIX bundle's id). The node's MISP feed
            // picks its entries and names publishers with the same two calls.
            let entry = match formats::readable_entry(&entry, opened) {
                Some(std::borrow::Cow::Owned(opened)) => opened,
                _ => entry,
            };
            let publisher = Publisher::exporting(&self.charter, &entry.author);
            entries.push((entry, id, publisher));
            bar.inc(1);
        }
        match page["next"].as_str() {
            Some(next) => self.cursor = Some(next.to_owned()),
            None => self.done = true,
        }
        Ok(Some(entries))
    }
}

/// Writes one STIX bundle to `out`: identities and markings once, then every object of
/// every entry. The bundle id is derived from the entries, so it is written last. The
/// node's own organisation's kept STIX ids are written as they are, everyone else's
/// namespaced (see `formats::stix`).
pub(super) fn export_stix(api: &ApiArgs, out: &mut dyn std::io::Write) -> Result<u64> {
    let kept = stix::KeptIds::of_node(own_organisation(api)?);
    let lists = export_warninglists();
    let mut pages = Pages::new(api)?;
    let mut seen = HashSet::new();
    let mut ids = Vec::new();
    let mut written = 0u64;
    // STIX forbids an empty `objects` list: the key is written with the first object.
    out.write_all(b"{\"type\":\"bundle\"")?;
    while let Some(page) = pages.next_page()? {
        for (entry, id, publisher) in &page {
            ids.push(*id);
            let marks = Some(&*lists);
            for object in stix::export_entry_marked(entry, id, publisher, kept, marks) {
                // Objects several entries share are written once, as export_bundle does.
                let shared = matches!(
                    object["type"].as_str(),
                    Some("identity" | "marking-definition" | "malware" | "campaign")
                );
                if shared && !seen.insert(object["id"].as_str().unwrap_or_default().to_owned()) {
                    continue;
                }
                out.write_all(if written == 0 {
                    b",\"objects\":["
                } else {
                    b","
                })?;
                serde_json::to_writer(&mut *out, &object)?;
                written += 1;
            }
        }
    }
    if written > 0 {
        out.write_all(b"]")?;
    }
    write!(out, ",\"id\":\"{}\"}}", stix::bundle_id(ids.iter()))?;
    Ok(written)
}

/// The lists exports mark values with. The export runs in this process, which does not
/// read the node's configuration: it marks with the default set.
fn export_warninglists() -> std::sync::Arc<crate::warninglists::Warninglists> {
    crate::warninglists::Warninglists::builtin()
}

/// The organisation the node serves, as its status says; `None` when the charter does not
/// name the node (or the node predates the field), so no kept id is taken as its own.
fn own_organisation(api: &ApiArgs) -> Result<Option<threatmesh_protocol::PublicKey>> {
    let status = call(api, "GET", "/api/v1/status", None)?;
    match &status["organisation"] {
        Json::Null => Ok(None),
        organisation => serde_json::from_value(organisation.clone())
            .map(Some)
            .context("reading the node's organisation from its status"),
    }
}

/// Writes every indicator as CSV rows to `out`.
pub(super) fn export_csv(api: &ApiArgs, out: &mut dyn std::io::Write) -> Result<u64> {
    let mut pages = Pages::new(api)?;
    let lists = export_warninglists();
    csv::write_header(&mut *out)?;
    let mut rows = 0u64;
    while let Some(page) = pages.next_page()? {
        for (entry, id, publisher) in &page {
            rows += csv::write_entry_marked(&mut *out, entry, *id, publisher, Some(&lists))? as u64;
        }
    }
    Ok(rows)
}

/// Writes a MISP feed into directory `dir`: an event file per entry as pages arrive, then
/// the manifest and hashes.csv for all of them.
pub(super) fn export_misp(api: &ApiArgs, dir: &std::path::Path) -> Result<u64> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut pages = Pages::new(api)?;
    let mut manifest = BTreeMap::new();
    let mut hashes = Vec::new();
    let mut events = 0u64;
    let lists = export_warninglists();
    while let Some(page) = pages.next_page()? {
        let feed = marks::export_feed_marked(
            page.iter()
                .map(|(entry, id, publisher)| (entry, *id, publisher)),
            &lists,
        );
        for (uuid, event) in &feed.events {
            let path = dir.join(format!("{uuid}.json"));
            std::fs::write(&path, serde_json::to_vec(event)?)
                .with_context(|| format!("writing {}", path.display()))?;
            events += 1;
        }
        if let Some(records) = feed.manifest.as_object() {
            manifest.extend(records.clone());
        }
        hashes.extend(feed.hashes);
    }
    let path = dir.join("manifest.json");
    std::fs::write(&path, serde_json::to_vec(&manifest)?)
        .with_context(|| format!("writing {}", path.display()))?;
    let path = dir.join("hashes.csv");
    let mut text = hashes.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(events)
}

/// Runs an export in `format` to `out` (a file, or a directory for MISP).
pub(super) fn export(api: &ApiArgs, format: ExportFormat, out: Option<&PathBuf>) -> Result<()> {
    if format == ExportFormat::Misp {
        let Some(dir) = out else {
            bail!("a MISP feed is a directory: name it with --out DIR");
        };
        let events = export_misp(api, dir)?;
        out!("exported {events} MISP events to {}", dir.display());
        return Ok(());
    }
    let mut output: Box<dyn std::io::Write> = match out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let written = match format {
        ExportFormat::Stix => export_stix(api, &mut output)?,
        ExportFormat::Csv => export_csv(api, &mut output)?,
        ExportFormat::Entries | ExportFormat::Misp => {
            bail!("{format:?} is not written by this function")
        }
    };
    output.flush().context("writing the export")?;
    if let Some(path) = out {
        let what = if format == ExportFormat::Stix {
            "STIX objects"
        } else {
            "CSV rows"
        };
        out!("exported {written} {what} to {}", path.display());
    }
    Ok(())
}
