//! `threatmesh publish`, `query` and `status`: a running node's HTTP API from the shell.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use serde_json::{Value as Json, json};

/// The environment variable the API token is taken from when no `--token-file` is given.
pub(super) const TOKEN_ENV: &str = "THREATMESH_TOKEN";

/// Longest token file read: a token is tens of characters.
const MAX_TOKEN_FILE_BYTES: u64 = 4096;

#[derive(Debug, Args)]
pub(super) struct ApiArgs {
    /// The node's API.
    #[arg(long, env = "THREATMESH_API", default_value = "http://127.0.0.1:8080")]
    pub(super) api: String,
    /// A file holding a bearer token from the node's configuration (api.tokens), readable
    /// by its owner only. Without it the token is taken from the THREATMESH_TOKEN
    /// environment variable.
    #[arg(long, env = "THREATMESH_TOKEN_FILE", conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// Deprecated: every local user sees a token given here (`ps`). Use --token-file or
    /// THREATMESH_TOKEN.
    #[arg(long)]
    token: Option<String>,
    /// The token, once found (a command may call the API many times).
    #[arg(skip)]
    resolved: std::sync::OnceLock<Result<String, String>>,
}

impl ApiArgs {
    /// The bearer token: from `--token-file`, else the deprecated `--token` (with a
    /// warning), else `THREATMESH_TOKEN`.
    pub(super) fn token(&self) -> Result<&str> {
        self.resolved
            .get_or_init(|| self.find_token().map_err(|error| format!("{error:#}")))
            .as_deref()
            .map_err(|error| anyhow::anyhow!("{error}"))
    }

    /// The URL of `path` on the node's API.
    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api.trim_end_matches('/'))
    }

    /// The `Authorization` header's value every request to the node carries.
    pub(super) fn authorization(&self) -> Result<String> {
        Ok(format!("Bearer {}", self.token()?))
    }

    fn find_token(&self) -> Result<String> {
        if let Some(path) = &self.token_file {
            return read_token_file(path);
        }
        if let Some(token) = &self.token {
            eprintln!(
                "warning: --token is deprecated: other local users can read it in the process \
                 list. Use --token-file FILE or the {TOKEN_ENV} environment variable."
            );
            return Ok(token.clone());
        }
        match std::env::var(TOKEN_ENV) {
            Ok(token) if !token.trim().is_empty() => Ok(token.trim().to_owned()),
            _ => bail!(
                "no API token: pass --token-file FILE (a file holding one of api.tokens of the \
                 node's threatmesh.toml, mode 0600) or set {TOKEN_ENV}"
            ),
        }
    }
}

/// The token in the file at `path`, refused if others can read it (as key files are).
fn read_token_file(path: &std::path::Path) -> Result<String> {
    let shown = path.display();
    if let Some(mode) = crate::keyfile::open_to_others(path)
        .with_context(|| format!("reading the token file {shown}"))?
    {
        bail!("token file {shown} can be read by others (mode {mode:o}); run: chmod 600 {shown}");
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| {
            file.take(MAX_TOKEN_FILE_BYTES + 1)
                .read_to_string(&mut text)
        })
        .with_context(|| format!("reading the token file {shown}"))?;
    if text.len() as u64 > MAX_TOKEN_FILE_BYTES {
        bail!("token file {shown} is over {MAX_TOKEN_FILE_BYTES} bytes: it holds no token");
    }
    let token = text.trim();
    if token.is_empty() {
        bail!("token file {shown} is empty");
    }
    Ok(token.to_owned())
}

#[derive(Debug, Args)]
pub(super) struct PublishArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// TLP marking of what is published (clear, green, amber, amber+strict, red).
    #[arg(long, default_value = "amber")]
    tlp: String,
    /// A recipient organisation (its id, hex): the bundle is sealed so only the named
    /// organisations and this node's can read it. Repeat for each; needed for red and
    /// amber+strict.
    #[arg(long = "recipient")]
    recipients: Vec<String>,
    /// Publish indicators on a warninglist too (public DNS resolvers, private addresses,
    /// empty-file hashes, top domains, ...). By default they are held back and listed.
    #[arg(long)]
    ignore_warninglists: bool,
    /// A file (or `-` for standard input): a JSON publish request as the API takes it, or
    /// a plain list of values, one per line (kind detected, defanged values accepted).
    file: PathBuf,
}

#[derive(Debug, Args)]
pub(super) struct ExportArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// What to write: the entries as JSON lines, one STIX 2.1 bundle, a MISP feed
    /// directory, or CSV.
    #[arg(long, value_enum, default_value = "entries")]
    format: super::exchange::ExportFormat,
    /// Where to write (default: standard output; a directory for a MISP feed).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Items per publish request: large lists go in several, with progress shown.
const PUBLISH_CHUNK: usize = 10_000;

/// A progress bar on standard error when it is a terminal, hidden otherwise.
pub(super) fn progress(total: u64, what: &str) -> indicatif::ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
        "{{bar:40}} {{pos}}/{{len}} {what} ({{per_sec}}, {{eta}} left)"
    )) {
        bar.set_style(style);
    }
    bar
}

#[derive(Debug, Args)]
pub(super) struct QueryArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Print the node's JSON answer instead of a summary.
    #[arg(long)]
    json: bool,
    /// Values to look up (kind detected, defanged accepted).
    #[arg(required = true)]
    values: Vec<String>,
}

pub(super) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// Sends a request and returns the JSON answer, or the API's error message.
pub(super) fn call(api: &ApiArgs, method: &str, path: &str, body: Option<&Json>) -> Result<Json> {
    let url = api.url(path);
    let auth = api.authorization()?;
    let agent = agent();
    let response = match (method, body) {
        ("POST", Some(body)) => agent
            .post(&url)
            .header("Authorization", &auth)
            .send_json(body),
        _ => agent.get(&url).header("Authorization", &auth).call(),
    };
    answer_of(api, response, false)
}

/// POSTs `body` as it is (a file to import, of `media_type`) and returns the JSON answer,
/// or the API's error message. An answer that carries an import report is returned even
/// with an error status, so the caller can show what was refused.
pub(super) fn call_raw(api: &ApiArgs, path: &str, media_type: &str, body: Vec<u8>) -> Result<Json> {
    let response = agent()
        .post(&api.url(path))
        .header("Authorization", &api.authorization()?)
        .header("Content-Type", media_type)
        .send(&body[..]);
    answer_of(api, response, true)
}

/// The JSON of a node's answer, or its error message as an error.
fn answer_of(
    api: &ApiArgs,
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    keep_reports: bool,
) -> Result<Json> {
    let mut response = response.with_context(|| format!("cannot reach the node at {}", api.api))?;
    let status = response.status();
    let text = response
        .body_mut()
        .with_config()
        .limit(256 * 1024 * 1024)
        .read_to_string()
        .context("reading the node's answer")?;
    let answer: Json = serde_json::from_str(&text).unwrap_or(Json::String(text));
    let report = keep_reports && answer.get("report").is_some();
    if !(status.is_success() || report) {
        bail!("the node answered {status}: {}", error_message(&answer));
    }
    Ok(answer)
}

/// What an answer of the node says went wrong: its `error`, or the whole answer.
pub(super) fn error_message(answer: &Json) -> String {
    answer
        .get("error")
        .and_then(Json::as_str)
        .map_or_else(|| answer.to_string(), str::to_owned)
}

pub(super) fn publish(args: &PublishArgs) -> Result<()> {
    let mut text = String::new();
    if args.file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
    } else {
        text = std::fs::read_to_string(&args.file)
            .with_context(|| format!("reading {}", args.file.display()))?;
    }
    let mut request = match serde_json::from_str::<Json>(&text) {
        Ok(request) if request.is_object() => request,
        _ => plain_list(&text, &args.tlp)?,
    };
    if !args.recipients.is_empty() {
        let recipients = args
            .recipients
            .iter()
            .map(|org| {
                org.parse::<threatmesh_protocol::PublicKey>()
                    .with_context(|| format!("--recipient {org:?}: expected an organisation id"))
            })
            .collect::<Result<Vec<_>>>()?;
        request["distribution"] = json!({ "recipients": recipients });
    }
    let items = request["items"]
        .as_array_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    if items.is_empty() {
        bail!("nothing to publish: no items");
    }
    if args.ignore_warninglists {
        request["ignore_warninglists"] = Json::Bool(true);
    }
    let bar = progress(items.len() as u64, "indicators");
    let mut entries = Vec::new();
    let mut held_back = Vec::new();
    for (number, chunk) in items.chunks(PUBLISH_CHUNK).enumerate() {
        request["items"] = Json::Array(chunk.to_vec());
        let answer = call(&args.api, "POST", "/api/v1/publish", Some(&request))?;
        entries.extend(answer["entries"].as_array().cloned().unwrap_or_default());
        for mut held in answer["held_back"].as_array().cloned().unwrap_or_default() {
            // The node numbers the items of each request; number them in the file's.
            let index = held["index"].as_u64().unwrap_or(0) + (number * PUBLISH_CHUNK) as u64;
            held["index"] = json!(index);
            held_back.push(held);
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    print_held_back(&held_back);
    let count = entries.len();
    out!(
        "published in {count} entr{}",
        if count == 1 { "y" } else { "ies" }
    );
    for id in &entries {
        out!("  {}", id.as_str().unwrap_or_default());
    }
    Ok(())
}

/// Prints the indicators a node held back for being on a warninglist.
pub(super) fn print_held_back(held_back: &[Json]) {
    if held_back.is_empty() {
        return;
    }
    out!(
        "held back {} indicator(s) on a warninglist (likely false positives; \
         --ignore-warninglists publishes them):",
        held_back.len()
    );
    for held in held_back {
        let lists: Vec<&str> = held["warninglists"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|list| list["id"].as_str())
            .collect();
        out!(
            "  item {}: {} {} is on {}",
            held["index"],
            held["kind"].as_str().unwrap_or("?"),
            held["value"].as_str().unwrap_or("?"),
            lists.join(", ")
        );
    }
}

/// A publish request from a plain list; refuses the whole list if a line is not a value.
fn plain_list(text: &str, tlp: &str) -> Result<Json> {
    let now = super::now().0;
    let mut items = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let value = threatmesh_protocol::Value::detect(line)
            .with_context(|| format!("line {}", number + 1))?;
        items.push(json!({
            "type": "indicator",
            "kind": value.kind().as_str(),
            "value": value.as_str(),
            "valid_from": now,
        }));
    }
    if items.is_empty() {
        bail!("nothing to publish: the list holds no values");
    }
    Ok(json!({ "tlp": tlp, "items": items }))
}

pub(super) fn query(args: &QueryArgs) -> Result<()> {
    let answer = call(
        &args.api,
        "POST",
        "/api/v1/lookup",
        Some(&json!({ "values": args.values })),
    )?;
    if args.json {
        out!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    let found = answer["found"].as_array().cloned().unwrap_or_default();
    for lookup in &found {
        let value = &lookup["value"];
        out!(
            "{} ({})",
            value["value"].as_str().unwrap_or("?"),
            value["kind"].as_str().unwrap_or("?")
        );
        for assertion in lookup["assertions"].as_array().into_iter().flatten() {
            let org = assertion["org"].as_str().unwrap_or("?");
            out!(
                "  asserted by {} confidence {} {}{}",
                org.chars().take(16).collect::<String>(),
                assertion["confidence"],
                assertion["state"]["state"].as_str().unwrap_or("?"),
                assertion["context"]["threat"]
                    .as_str()
                    .map(|threat| format!(" ({threat})"))
                    .unwrap_or_default(),
            );
        }
        for sighting in lookup["sightings"].as_array().into_iter().flatten() {
            out!("  sighted {} times", sighting["count"]);
        }
    }
    for invalid in answer["invalid"].as_array().into_iter().flatten() {
        out!("invalid: {}", invalid["reason"].as_str().unwrap_or("?"));
    }
    let asked = answer["asked"].as_u64().unwrap_or(0);
    out!("{} of {asked} known", found.len());
    Ok(())
}

pub(super) fn status(args: &ApiArgs) -> Result<()> {
    let answer = call(args, "GET", "/api/v1/status", None)?;
    out!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}

pub(super) fn export(args: &ExportArgs) -> Result<()> {
    use std::io::Write as _;
    if args.format != super::exchange::ExportFormat::Entries {
        return super::exchange::export(&args.api, args.format, args.out.as_ref());
    }
    let mut output: Box<dyn std::io::Write> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut cursor: Option<String> = None;
    let mut bar: Option<indicatif::ProgressBar> = None;
    let mut exported = 0u64;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/api/v1/entries?cursor={cursor}"),
            None => "/api/v1/entries".to_owned(),
        };
        let page = call(&args.api, "GET", &path, None)?;
        let bar =
            bar.get_or_insert_with(|| progress(page["total"].as_u64().unwrap_or(0), "entries"));
        for entry in page["entries"].as_array().into_iter().flatten() {
            match writeln!(output, "{entry}") {
                Ok(()) => {}
                // The reader went away (`| head`): stop quietly.
                Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                Err(error) => return Err(error).context("writing the export"),
            }
            exported += 1;
            bar.inc(1);
        }
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    output.flush().context("writing the export")?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if args.out.is_some() {
        out!("exported {exported} entries");
    }
    Ok(())
}
