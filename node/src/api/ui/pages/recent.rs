//! `GET /ui/recent`: the entries this node accepted last, filtered and paged, each
//! summarised once and kept ([`Summaries`]) so paging does not decode entries again.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use threatmesh_protocol::bundle::Tlp;
use threatmesh_protocol::entry::Body;
use threatmesh_protocol::{Bundle, Hash, Kind, PublicKey, Timestamp};

use crate::api::ui::{Refusal, author_name, html as page, org_name, signed_in};
use crate::api::{ApiState, blocking};

use super::{RECENT_BUDGET, RECENT_PAGE, ago, frame, tlp_badge, tlp_value, when};

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
