//! The console's frame (head, navigation, sign-out) and its read-only pages: sign-in,
//! Overview, Recent and Activity. Search and Publish, which take forms, have modules of
//! their own.
//!
//! Everything a member published reaches these templates as a Rust string and is escaped
//! by maud; the only unescaped output (`PreEscaped`) is the SVG of the charts, which
//! [`super::activity::line_chart`] writes from numbers and fixed words only.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use libp2p::PeerId;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;
use threatmesh_protocol::bundle::Tlp;
use threatmesh_protocol::entry::Body;
use threatmesh_protocol::{Bundle, Hash, Kind, PublicKey, Timestamp};

use super::activity::{Series, line_chart};
use super::publish::Draft;
use super::{Refusal, SignedIn, author_name, html as page, org_name, signed_in};
use crate::api::{ApiState, blocking};

/// Largest form body the console reads (the publish form's values included).
pub(crate) const MAX_FORM_BYTES: usize = 4 * 1024 * 1024;

/// Entries one page of Recent lists.
const RECENT_PAGE: usize = 25;

/// How long one page of Recent may spend reading entries it has not summarised yet
/// (each is decoded whole: an entry of 10,000 indicators takes a few milliseconds); past
/// it the page ends early, with a link to read on. At least one entry is read per page,
/// so paging always moves.
const RECENT_BUDGET: std::time::Duration = std::time::Duration::from_millis(60);

/// The pages of the navigation: path, id suffix, title.
const PAGES: [(&str, &str, &str); 5] = [
    ("/ui/overview", "overview", "Overview"),
    ("/ui/search", "search", "Search"),
    ("/ui/recent", "recent", "Recent"),
    ("/ui/publish", "publish", "Publish"),
    ("/ui/activity", "activity", "Activity"),
];

/// A whole page: `title`, the navigation with `current` marked, and `main`.
pub(crate) fn frame(
    title: &str,
    current: &str,
    signed_in: Option<&SignedIn>,
    main: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · threatmesh" }
                link rel="stylesheet" href="/ui/assets/console.css";
                script src="/ui/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "threatmesh" }
                    @if let Some(signed_in) = signed_in {
                        nav id="nav" aria-label="Console" {
                            ul {
                                @for (path, id, name) in PAGES {
                                    li {
                                        a id={ "nav-" (id) } href=(path)
                                            aria-current=[(id == current).then_some("page")] { (name) }
                                    }
                                }
                            }
                        }
                        form id="signout" method="post" action="/ui/signout" {
                            input type="hidden" name="csrf" value=(signed_in.session.csrf);
                            @if !signed_in.may_write() { span.badge { "read-only" } }
                            button id="signout-submit" type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (main)
                }
            }
        }
    }
}

/// An error page: `message` and a way back.
pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    page(
        status,
        frame(
            status.canonical_reason().unwrap_or("Error"),
            "",
            None,
            html! {
                p id="error" role="alert" { (message) }
                p { a href="/ui/overview" { "Back to the console" } }
            },
        ),
    )
}

/// `GET /ui/signin`.
pub(crate) async fn signin_page(headers: HeaderMap) -> Response {
    signin(StatusCode::OK, None, None, super::served_over_tls(&headers))
}

/// The sign-in page, with `error` if the last try failed, carrying `draft` (a publish form
/// whose session ended) so it is not lost. Its form token is new each time, and also set
/// in a cookie only this page's post carries: a sign-in form posted from anywhere else
/// (signing the analyst in to someone else's session) does not match it.
pub(crate) fn signin(
    status: StatusCode,
    error: Option<&str>,
    draft: Option<&Draft>,
    secure: bool,
) -> Response {
    let Ok(form_token) = super::session::random_token() else {
        tracing::error!("console: no randomness for a sign-in form token");
        return error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The node could not make a sign-in form.",
        );
    };
    let mut response = page(
        status,
        frame(
            "Sign in",
            "",
            None,
            html! {
                @if draft.is_some() {
                    p.notice role="status" {
                        "Your session ended. Sign in again: the indicators you were publishing are kept and will be shown again."
                    }
                }
                form id="signin" method="post" action="/ui/signin" {
                    input type="hidden" name="csrf" value=(form_token);
                    label for="token" { "API token" }
                    input id="token" name="token" type="password" autocomplete="current-password"
                        required autofocus aria-describedby=[error.map(|_| "error")];
                    @if let Some(error) = error {
                        p id="error" role="alert" { (error) }
                    }
                    @if let Some(draft) = draft { (draft.carry()) }
                    button id="signin-submit" type="submit" { "Sign in" }
                }
                p.hint {
                    "The token is one of the node's API tokens (" code { "api.tokens" } " or "
                    code { "api.read_tokens" } " in threatmesh.toml). It is exchanged for a session cookie and not kept in the browser."
                }
            },
        ),
    );
    let cookie = format!(
        "{}={form_token}; Path=/ui/signin; Max-Age=3600; HttpOnly; SameSite=Strict{}",
        super::session::SIGNIN_COOKIE,
        if secure { "; Secure" } else { "" }
    );
    if let Ok(value) = axum::http::HeaderValue::from_str(&cookie) {
        response
            .headers_mut()
            .append(axum::http::header::SET_COOKIE, value);
    }
    response
}

/// A time as the console shows it: UTC, to the second.
pub(crate) fn when(time: Timestamp) -> String {
    crate::formats::rfc3339::format(time)
}

/// How long ago `time` was, before `now`, in words.
pub(crate) fn ago(time: Timestamp, now: Timestamp) -> String {
    let secs = now.0.saturating_sub(time.0) / 1000;
    match secs {
        0..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=172_799 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

/// A TLP label as a badge the stylesheet colours.
pub(crate) fn tlp_badge(tlp: Tlp) -> Markup {
    let class = match tlp {
        Tlp::Clear => "clear",
        Tlp::Green => "green",
        Tlp::Amber => "amber",
        Tlp::AmberStrict => "amber-strict",
        Tlp::Red => "red",
    };
    html! { span class={ "tlp tlp-" (class) } { (tlp.label()) } }
}

/// Bytes in a few characters.
fn size(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let bytes = bytes as f64;
    if bytes >= 1024.0 * MIB {
        format!("{:.1} GiB", bytes / 1024.0 / MIB)
    } else {
        format!("{:.1} MiB", bytes / MIB)
    }
}

/// `GET /ui/overview`: the federation, its members and this node's health.
pub(crate) async fn overview(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let signed_in = signed_in(&state, &headers)?;
    let charter = state.client.charter();
    let connected: Vec<PeerId> = state
        .client
        .peers()
        .await
        .map_err(crate::api::ApiError::from)?;
    let metrics = state.client.metrics();
    let now = state.client.now();
    state.console.activity.connected(&connected, now);
    let store = state.store.clone();
    let (reading, refusal) =
        blocking(move || (crate::api::StoreReading::of(&store), store.write_refusal())).await?;
    let own = state.client.node_key();
    let activity = &state.console.activity;
    let (stats, feeds) = match &reading.read {
        Ok((stats, feeds)) => (Some(stats), feeds.as_slice()),
        Err(_) => (None, &[][..]),
    };
    let lag: HashMap<PublicKey, u64> = feeds
        .iter()
        .map(|feed| {
            let advertised = metrics.advertised.get(&feed.author).copied().unwrap_or(0);
            (feed.author, advertised.saturating_sub(feed.contiguous))
        })
        .collect();
    let equivocated: Vec<String> = feeds
        .iter()
        .filter(|feed| feed.equivocated)
        .map(|feed| author_name(&charter, &feed.author))
        .collect();
    let body = html! {
        section aria-labelledby="federation-heading" {
            h2 id="federation-heading" { "Federation" }
            dl.facts {
                dt { "Name" } dd id="federation-name" { (charter.charter().name) }
                dt { "Charter version" } dd id="charter-version" { (charter.charter().version) }
                dt { "Issued" } dd { (when(charter.charter().issued)) }
                dt { "This node" } dd { (author_name(&charter, &own)) }
            }
        }
        section aria-labelledby="alerts-heading" {
            h2 id="alerts-heading" { "Alerts" }
            ul id="alerts" {
                @if let Some(refusal) = &refusal {
                    li.alert { "Writes refused: " (refusal) }
                }
                @if let Err(error) = &reading.read {
                    li.alert { "The store cannot be read: " (error) }
                }
                @for name in &equivocated {
                    li.alert { "Equivocation: a node of " (name) " signed two different entries for one place in its feed." }
                }
                @if metrics.peers_banned > 0 {
                    li.alert { (metrics.peers_banned) " peer(s) banned for misbehaviour since the node started." }
                }
                @if let Some(offset) = metrics.clock.suspected_offset_secs {
                    li.alert { "Clock warning: this node's clock seems " (offset.unsigned_abs()) " s "
                        (if offset < 0 { "behind" } else { "ahead of" }) " the organisations' clocks." }
                }
                @if connected.is_empty() {
                    li.alert { "No member is connected." }
                }
                @if reading.read.is_ok() && equivocated.is_empty() && metrics.peers_banned == 0
                    && metrics.clock.suspected_offset_secs.is_none() && !connected.is_empty()
                    && refusal.is_none() {
                    li.ok { "None." }
                }
            }
        }
        section aria-labelledby="members-heading" {
            h2 id="members-heading" { "Members" }
            div.scroll tabindex="0" role="region" aria-label="Members" {
                table id="members" {
                    thead { tr {
                        th scope="col" { "Organisation" } th scope="col" { "Country" }
                        th scope="col" { "Roles" } th scope="col" { "Status" }
                        th scope="col" { "Connected" } th scope="col" { "Last heard from" }
                        th scope="col" { "Lag (entries)" }
                    } }
                    tbody {
                        @for member in &charter.charter().members {
                            @let peers: Vec<PeerId> = member.nodes.iter()
                                .filter_map(|cert| PeerId::from_bytes(&cert.node.peer_id_bytes()).ok())
                                .collect();
                            @let is_own = member.nodes.iter().any(|cert| cert.node == own);
                            @let is_connected = peers.iter().any(|peer| connected.contains(peer));
                            @let heard = peers.iter().filter_map(|peer| activity.last_connected(peer)).max();
                            @let behind: u64 = member.nodes.iter().filter_map(|cert| lag.get(&cert.node)).sum();
                            tr.member data-org=(member.name) {
                                th scope="row" { (member.name) @if is_own { " (this node)" } }
                                td { (member.country) }
                                td { (roles(member)) }
                                td { (standing(&member.status)) }
                                td.connected { @if is_own { "—" } @else if is_connected { "yes" } @else { "no" } }
                                td { @if is_own { "—" } @else if is_connected { "now" }
                                     @else if let Some(heard) = heard { (ago(heard, now)) }
                                     @else { "not since the node started" } }
                                td { (behind) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="node-heading" {
            h2 id="node-heading" { "This node" }
            dl.facts {
                @if let Some(stats) = stats {
                    dt { "Entries held" } dd id="entries-held" { (stats.entries) }
                    dt { "Indicator records" } dd { (stats.records) }
                    dt { "Sealed entries" } dd { (stats.sealed) " (" (stats.unread) " not readable here)" }
                    dt { "Store on disk" } dd { (size(stats.bytes_on_disk)) }
                }
                dt { "Disk free" } dd { @if let Some(free) = reading.disk.free_bytes { (size(free)) } @else { "unknown" } }
                dt { "Disk reserve" } dd { (size(reading.disk.reserve_bytes)) }
                dt { "Peers connected" } dd { (connected.len()) }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        frame("Overview", "overview", Some(&signed_in), body),
    ))
}

fn roles(member: &threatmesh_protocol::charter::Member) -> &'static str {
    match (member.roles.publish, member.roles.read) {
        (true, true) => "publish, read",
        (true, false) => "publish",
        (false, true) => "read",
        (false, false) => "none",
    }
}

fn standing(status: &threatmesh_protocol::charter::Status) -> String {
    use threatmesh_protocol::charter::Status;
    match status {
        Status::Active => "active".to_owned(),
        Status::Suspended { since } => format!("suspended since {}", when(*since)),
        Status::Revoked { since, .. } => format!("revoked since {}", when(*since)),
    }
}

/// The filters and position of a Recent page.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RecentQuery {
    org: Option<String>,
    tlp: Option<String>,
    kind: Option<String>,
    /// The cursor: list entries accepted before this row of the index.
    before: Option<String>,
}

/// `GET /ui/recent`: the latest entries, newest first, filtered and paged.
pub(crate) async fn recent(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(query): Query<RecentQuery>,
) -> Result<Response, Refusal> {
    let signed_in = signed_in(&state, &headers)?;
    let charter = state.client.charter();
    let bad = |what: &str| Refusal::Page(StatusCode::BAD_REQUEST, what.to_owned());
    let org: Option<PublicKey> = match query.org.as_deref().filter(|text| !text.is_empty()) {
        Some(text) => Some(
            text.parse()
                .map_err(|_| bad("org: not an organisation key"))?,
        ),
        None => None,
    };
    let tlp: Option<Tlp> = match query.tlp.as_deref().filter(|text| !text.is_empty()) {
        Some(text) => Some(text.parse().map_err(|_| bad("tlp: not a TLP marking"))?),
        None => None,
    };
    let kind: Option<Kind> = match query.kind.as_deref().filter(|text| !text.is_empty()) {
        Some(text) => Some(
            text.parse()
                .map_err(|_| bad("kind: not an indicator kind"))?,
        ),
        None => None,
    };
    let before = match query.before.as_deref().filter(|text| !text.is_empty()) {
        Some(text) => Some(
            threatmesh_protocol::crypto::hex_decode::<17>(text)
                .map_err(|_| bad("before: not a cursor of this page"))?,
        ),
        None => None,
    };
    // Which authors are the organisation's nodes, for the filter.
    let authors: Option<Vec<PublicKey>> = org.map(|org| {
        charter
            .charter()
            .member(&org)
            .map(|member| member.nodes.iter().map(|cert| cert.node).collect())
            .unwrap_or_default()
    });
    let store = state.store.clone();
    let summaries = Arc::clone(&state.console.summaries);
    let (rows, next) = blocking(move || -> Result<_, crate::store::StoreError> {
        let started = std::time::Instant::now();
        let mut listed: Vec<(Timestamp, Arc<Shown>)> = Vec::new();
        let mut cursor = before.map(|key| key.to_vec());
        let mut moved = false;
        'scan: loop {
            let batch = store.recent_ids(cursor.as_deref(), RECENT_PAGE)?;
            if batch.is_empty() {
                cursor = None;
                break;
            }
            for (key, added, id) in batch {
                if listed.len() == RECENT_PAGE || (moved && started.elapsed() > RECENT_BUDGET) {
                    break 'scan;
                }
                cursor = Some(key);
                moved = true;
                let shown = match summaries.get(&id) {
                    Some(shown) => shown,
                    None => {
                        let Some(entry) = store.entry(&id)? else {
                            continue;
                        };
                        let opened = match &entry.entry().body {
                            Body::Sealed(_) => store.opened(&id)?,
                            Body::Bundle(_) => None,
                        };
                        let shown = Shown::of(&entry, opened.as_ref());
                        // A sealed entry unread now may be opened later (a key added):
                        // only what was read is kept.
                        if shown.recipients_only.is_some() {
                            Arc::new(shown)
                        } else {
                            summaries.put(id, shown)
                        }
                    }
                };
                if authors
                    .as_ref()
                    .is_some_and(|authors| !authors.contains(&shown.author))
                    || tlp.is_some_and(|tlp| shown.tlp != tlp)
                    || kind.is_some_and(|kind| !shown.kinds.contains(&kind))
                {
                    continue;
                }
                listed.push((added, shown));
            }
        }
        Ok((listed, cursor))
    })
    .await??;
    let next = next.map(|key| threatmesh_protocol::crypto::hex_encode(&key));
    let now = state.client.now();
    let body = html! {
        form id="filters" method="get" action="/ui/recent" {
            div.row {
                label { "Organisation "
                    select name="org" {
                        option value="" { "any" }
                        @for member in &charter.charter().members {
                            option value=(member.org) selected[Some(member.org) == org] { (member.name) }
                        }
                    }
                }
                label { "TLP "
                    select name="tlp" {
                        option value="" { "any" }
                        @for level in [Tlp::Clear, Tlp::Green, Tlp::Amber, Tlp::AmberStrict, Tlp::Red] {
                            option value=(tlp_value(level)) selected[Some(level) == tlp] { (level.label()) }
                        }
                    }
                }
                label { "Kind "
                    select name="kind" {
                        option value="" { "any" }
                        @for each in Kind::ALL {
                            option value=(each.as_str()) selected[Some(each) == kind] { (each.as_str()) }
                        }
                    }
                }
                button type="submit" { "Filter" }
            }
        }
        @if rows.is_empty() {
            p id="recent-empty" { "No entries match." }
        }
        div.scroll tabindex="0" role="region" aria-label="Recent entries" {
            table id="recent" {
                thead { tr {
                    th scope="col" { "Arrived" } th scope="col" { "Organisation" }
                    th scope="col" { "TLP" } th scope="col" { "Content" }
                } }
                tbody {
                    @for (added, shown) in &rows {
                        tr.entry.sealed[shown.sealed]
                            data-org=(author_name(&charter, &shown.author)) data-tlp=(tlp_value(shown.tlp)) {
                            td { time datetime=(when(*added)) { (ago(*added, now)) } }
                            td { (author_name(&charter, &shown.author)) }
                            td { (tlp_badge(shown.tlp)) }
                            td {
                                @if let Some(recipients) = &shown.recipients_only {
                                    "Sealed for " (recipients.iter().map(|org| org_name(&charter, org)).collect::<Vec<_>>().join(", "))
                                    ": this node's organisation is not a recipient, so nothing of its content is shown."
                                } @else {
                                    (shown.summary)
                                    @if !shown.sample.is_empty() {
                                        ul.values { @for value in &shown.sample { li { code { (value) } } } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(next) = next {
            @if rows.len() < RECENT_PAGE {
                p.hint { "This page stopped reading to answer quickly; older entries may match too." }
            }
            p { a id="next" href={ "/ui/recent?" (recent_query(&query, &next)) } { "Older entries" } }
        }
    };
    Ok(page(
        StatusCode::OK,
        frame("Recent", "recent", Some(&signed_in), body),
    ))
}

/// The query of the next Recent page: the same filters, from `before`.
fn recent_query(query: &RecentQuery, before: &str) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in [
        ("org", &query.org),
        ("tlp", &query.tlp),
        ("kind", &query.kind),
    ] {
        if let Some(value) = value.as_deref().filter(|value| !value.is_empty()) {
            serializer.append_pair(name, value);
        }
    }
    serializer.append_pair("before", before);
    serializer.finish()
}

/// A TLP level as the filter and the publish form name it.
pub(crate) fn tlp_value(tlp: Tlp) -> &'static str {
    match tlp {
        Tlp::Clear => "clear",
        Tlp::Green => "green",
        Tlp::Amber => "amber",
        Tlp::AmberStrict => "amber+strict",
        Tlp::Red => "red",
    }
}

/// An entry as Recent shows it: a summary kept in [`Summaries`], so a page already seen
/// does not decode its entries again.
#[derive(Debug)]
pub(crate) struct Shown {
    author: PublicKey,
    tlp: Tlp,
    sealed: bool,
    /// For a sealed entry this node cannot read: its recipients, and nothing else.
    recipients_only: Option<Vec<PublicKey>>,
    kinds: Vec<Kind>,
    summary: String,
    /// The first few values.
    sample: Vec<String>,
}

impl Shown {
    fn of(entry: &threatmesh_protocol::SignedEntry, opened: Option<&Bundle>) -> Shown {
        let inner = entry.entry();
        let sealed = matches!(inner.body, Body::Sealed(_));
        let bundle = match (&inner.body, opened) {
            (Body::Bundle(bundle), _) => Some(bundle),
            (Body::Sealed(_), Some(bundle)) => Some(bundle),
            (Body::Sealed(_), None) => None,
        };
        let Some(bundle) = bundle else {
            let (tlp, recipients) = match &inner.body {
                Body::Sealed(sealed) => (
                    sealed.tlp,
                    sealed.slots.iter().map(|slot| slot.org).collect(),
                ),
                Body::Bundle(bundle) => (bundle.tlp, Vec::new()),
            };
            return Shown {
                author: inner.author,
                tlp,
                sealed,
                recipients_only: Some(recipients),
                kinds: Vec::new(),
                summary: String::new(),
                sample: Vec::new(),
            };
        };
        let (mut indicators, mut revocations, mut sightings) = (0, 0, 0);
        let mut kinds = Vec::new();
        for item in &bundle.items {
            match item {
                threatmesh_protocol::item::Item::Indicator(_) => indicators += 1,
                threatmesh_protocol::item::Item::Revocation(_) => revocations += 1,
                threatmesh_protocol::item::Item::Sighting(_) => sightings += 1,
            }
            let kind = item.value().kind();
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        let mut parts = Vec::new();
        for (count, word) in [
            (indicators, "indicator"),
            (revocations, "revocation"),
            (sightings, "sighting"),
        ] {
            if count > 0 {
                parts.push(format!(
                    "{count} {word}{}",
                    if count == 1 { "" } else { "s" }
                ));
            }
        }
        Shown {
            author: inner.author,
            tlp: bundle.tlp,
            sealed,
            recipients_only: None,
            kinds,
            summary: parts.join(", "),
            sample: bundle
                .items
                .iter()
                .take(3)
                .map(|item| item.value().to_string())
                .collect(),
        }
    }
}

/// Summaries of entries Recent has shown, by entry id: at most [`Summaries::MAX`]; when
/// full, it starts again empty. Only readable entries are kept (what a bundle says never
/// changes; a sealed entry unread today may open once a key is added).
#[derive(Debug, Default)]
pub(crate) struct Summaries {
    kept: std::sync::Mutex<HashMap<Hash, Arc<Shown>>>,
}

impl Summaries {
    const MAX: usize = 4_096;

    fn kept(&self) -> std::sync::MutexGuard<'_, HashMap<Hash, Arc<Shown>>> {
        self.kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, id: &Hash) -> Option<Arc<Shown>> {
        self.kept().get(id).cloned()
    }

    fn put(&self, id: Hash, shown: Shown) -> Arc<Shown> {
        let shown = Arc::new(shown);
        let mut kept = self.kept();
        if kept.len() >= Summaries::MAX {
            kept.clear();
        }
        kept.insert(id, Arc::clone(&shown));
        shown
    }
}

/// `GET /ui/activity`: the last hour's propagation and ingest, and the peers' comings
/// and goings.
pub(crate) async fn activity(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let signed_in = signed_in(&state, &headers)?;
    let charter = state.client.charter();
    let activity = &state.console.activity;
    // The history is sampled every few seconds: bring it up to now first.
    let now = state.client.now();
    let connected = state
        .client
        .peers()
        .await
        .map_err(crate::api::ApiError::from)?;
    activity.connected(&connected, now);
    let points = activity.points();
    let events = activity.events();
    let name_of = |peer: &PeerId| {
        charter
            .charter()
            .members
            .iter()
            .find(|member| {
                member.nodes.iter().any(|cert| {
                    PeerId::from_bytes(&cert.node.peer_id_bytes()).is_ok_and(|id| id == *peer)
                })
            })
            .map_or_else(|| peer.to_string(), |member| member.name.clone())
    };
    let propagation = line_chart(
        "propagation-chart",
        "Time from creation to arrival of other nodes' entries",
        "ms",
        &[
            Series {
                name: "median",
                values: points
                    .iter()
                    .map(|point| point.median_delay_ms.map(|ms| ms as f64))
                    .collect(),
            },
            Series {
                name: "slowest",
                values: points
                    .iter()
                    .map(|point| point.max_delay_ms.map(|ms| ms as f64))
                    .collect(),
            },
        ],
    );
    let ingest = line_chart(
        "ingest-chart",
        "Entries accepted and fetched by sync per interval",
        "entries",
        &[
            Series {
                name: "accepted",
                values: points
                    .iter()
                    .map(|point| Some(point.accepted as f64))
                    .collect(),
            },
            Series {
                name: "fetched by sync",
                values: points
                    .iter()
                    .map(|point| Some(point.fetched as f64))
                    .collect(),
            },
            Series {
                name: "refused",
                values: points
                    .iter()
                    .map(|point| Some(point.rejected as f64))
                    .collect(),
            },
        ],
    );
    let body = html! {
        p.hint { "One point every " (super::activity::SAMPLE_EVERY.as_secs()) " s since the node started, for the last hour ("
            (points.len()) " so far)." }
        section aria-labelledby="propagation-heading" {
            h2 id="propagation-heading" { "Propagation" }
            (PreEscaped(propagation))
        }
        section aria-labelledby="ingest-heading" {
            h2 id="ingest-heading" { "Ingest" }
            (PreEscaped(ingest))
        }
        section aria-labelledby="connections-heading" {
            h2 id="connections-heading" { "Connections" }
            div.scroll tabindex="0" role="region" aria-label="Connection history" {
                table id="connections" {
                    thead { tr { th scope="col" { "When" } th scope="col" { "Organisation (node)" } th scope="col" { "Event" } } }
                    tbody {
                        @if events.is_empty() {
                            tr { td colspan="3" { "No connection has come or gone since the node started." } }
                        }
                        @for event in &events {
                            tr {
                                td { time datetime=(when(event.at)) { (ago(event.at, now)) } }
                                td { (name_of(&event.peer)) }
                                td { @if event.connected { "connected" } @else { "left" } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        frame("Activity", "activity", Some(&signed_in), body),
    ))
}
