//! Search: the analyst pastes values (one per line, or a paragraph of a report; defanged
//! forms such as `hxxp://evil[.]example` are taken) and sees, per value, what every
//! organisation asserted about it, and the values nobody reported listed apart. The result
//! exports as CSV or as a STIX 2.1 bundle of the entries behind it.
//!
//! Lines that hold one word are values: one that is not a valid indicator is listed with
//! why. A line of several words is one value if it parses whole (a STIX pattern), else
//! free text: the words that parse as indicators are taken and the rest is prose,
//! ignored. At most [`MAX_SEARCH_VALUES`] values are looked
//! up at once.

use std::collections::HashSet;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use threatmesh_protocol::Value;

use super::pages::{frame, tlp_badge, when};
use super::{Fields, Refusal, SignedIn, form_of, html as respond, org_name, signed_in};
use crate::api::{ApiState, blocking};
use crate::store::{Lookup, State as Standing};

/// Most values one search looks up.
pub(crate) const MAX_SEARCH_VALUES: usize = 10_000;

/// Characters that separate words of free text (besides white space): what reports put
/// around values.
const SEPARATORS: &[char] = &[',', ';', '"', '\'', '<', '>', '(', ')', '|'];

/// What the pasted text held.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Pasted {
    /// Values, in the order first seen, each once.
    pub(crate) values: Vec<Value>,
    /// One-word lines that are not indicators, with why.
    pub(crate) invalid: Vec<(String, String)>,
    /// Values past [`MAX_SEARCH_VALUES`], not looked up.
    pub(crate) dropped: usize,
    /// Invalid lines past [`MAX_INVALID_SHOWN`], counted only.
    pub(crate) more_invalid: usize,
}

/// Invalid lines listed with why; more are counted.
const MAX_INVALID_SHOWN: usize = 100;

/// Reads values out of pasted text.
pub(crate) fn read_pasted(text: &str) -> Pasted {
    let mut pasted = Pasted::default();
    let mut seen = HashSet::new();
    let mut take = |value: Value, pasted: &mut Pasted| {
        if pasted.values.len() >= MAX_SEARCH_VALUES {
            pasted.dropped += 1;
        } else if seen.insert(value.clone()) {
            pasted.values.push(value);
        }
    };
    for line in text.lines() {
        // A whole line may be one value with spaces in it (a STIX pattern).
        let trimmed = line.trim();
        if trimmed.contains(' ')
            && let Ok(value) = Value::detect(trimmed)
        {
            take(value, &mut pasted);
            continue;
        }
        let words: Vec<&str> = line
            .split(|c: char| c.is_whitespace() || SEPARATORS.contains(&c))
            .filter(|word| !word.is_empty())
            .collect();
        match words.as_slice() {
            [] => {}
            [word] => match Value::detect(word) {
                Ok(value) => take(value, &mut pasted),
                Err(_) if pasted.invalid.len() >= MAX_INVALID_SHOWN => pasted.more_invalid += 1,
                Err(error) => pasted.invalid.push(((*word).to_owned(), error.to_string())),
            },
            words => {
                for word in words {
                    // Prose around values ends sentences with a full stop.
                    let word = word.trim_end_matches(['.', ':', '!', '?']);
                    if looks_like_a_value(word)
                        && let Ok(value) = Value::detect(word)
                    {
                        take(value, &mut pasted);
                    }
                }
            }
        }
    }
    pasted
}

/// Whether a word of free text could be an indicator at all: a domain, an address, a URL,
/// an e-mail or a digest has a dot, a colon, an `@`, or is long hex. Ordinary words are
/// not tried (`Value::detect` would take many of them as domains of no TLD).
fn looks_like_a_value(word: &str) -> bool {
    word.contains(['.', ':', '@', '[', '/'])
        || (word.len() >= 32 && word.chars().all(|c| c.is_ascii_hexdigit()))
}

/// `GET /ui/search`: the empty form.
pub(crate) async fn page(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let signed_in = signed_in(&state, &headers)?;
    Ok(render(&signed_in, "", None))
}

/// `POST /ui/search`: looks the pasted values up.
pub(crate) async fn search(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Refusal> {
    let fields = Fields::parse(&body);
    let signed_in = form_of(&state, &headers, &fields)?;
    let text = fields.get("values").unwrap_or_default().to_owned();
    let pasted = read_pasted(&text);
    let values = std::sync::Arc::new(pasted.values.clone());
    state.console.sessions.update(&signed_in.id, |session| {
        session.last_search = std::sync::Arc::clone(&values);
    });
    let (store, now) = (state.store.clone(), state.client.now());
    let found = blocking(move || store.lookup_many(&values, now)).await??;
    let result = Answered {
        charter: state.client.charter(),
        found,
        pasted,
        now,
        warninglists: std::sync::Arc::clone(state.client.warninglists()),
    };
    Ok(render(&signed_in, &text, Some(&result)))
}

/// A search's outcome, for the page.
struct Answered {
    charter: std::sync::Arc<threatmesh_protocol::SignedCharter>,
    found: Vec<Lookup>,
    pasted: Pasted,
    now: threatmesh_protocol::Timestamp,
    /// The lists a found value is marked with.
    warninglists: std::sync::Arc<crate::warninglists::Warninglists>,
}

fn render(signed_in: &SignedIn, text: &str, result: Option<&Answered>) -> Response {
    let body = html! {
        form id="search" method="post" action="/ui/search" {
            input type="hidden" name="csrf" value=(signed_in.session.csrf);
            label for="values" { "Values" }
            p.hint id="values-hint" { "One per line, or paste a paragraph of a report: defanged values (" code { "hxxp://evil[.]example" } ") are taken. At most "
                (MAX_SEARCH_VALUES) " values." }
            textarea id="values" name="values" rows="8" aria-describedby="values-hint" { (text) }
            button id="search-submit" type="submit" { "Search" }
        }
        @if let Some(result) = result { (results(result)) }
    };
    respond(
        StatusCode::OK,
        frame("Search", "search", Some(signed_in), body),
    )
}

fn results(result: &Answered) -> Markup {
    let found: HashSet<&Value> = result
        .found
        .iter()
        .filter(|lookup| !lookup.assertions.is_empty() || !lookup.sightings.is_empty())
        .map(|lookup| &lookup.value)
        .collect();
    let not_found: Vec<&Value> = result
        .pasted
        .values
        .iter()
        .filter(|value| !found.contains(value))
        .collect();
    html! {
        section aria-labelledby="results-heading" {
            h2 id="results-heading" { "Results" }
            p id="summary" role="status" {
                (result.pasted.values.len()) " value(s) looked up: " (found.len()) " known, "
                (not_found.len()) " not found"
                @if !result.pasted.invalid.is_empty() { ", " (result.pasted.invalid.len()) " not valid" }
                "."
                @if result.pasted.dropped > 0 { " " (result.pasted.dropped) " more were not looked up (at most " (MAX_SEARCH_VALUES) ")." }
            }
            @if !found.is_empty() {
                p.exports {
                    "Export these results: "
                    a id="export-csv" href="/ui/search/export?format=csv" download="threatmesh-search.csv" { "CSV" }
                    " · "
                    a id="export-stix" href="/ui/search/export?format=stix" download="threatmesh-search.json" { "STIX 2.1" }
                }
            }
            @for lookup in &result.found {
                @if !lookup.assertions.is_empty() || !lookup.sightings.is_empty() {
                    section.result data-value=(lookup.value.as_str()) {
                        h3 { code { (lookup.value.as_str()) } " " span.kind { (lookup.value.kind().as_str()) } }
                        @let on = result.warninglists.ids(&lookup.value);
                        @if !on.is_empty() {
                            p.warninglists { "On a warninglist (a likely false positive): " (on.join(", ")) }
                        }
                        @if !lookup.assertions.is_empty() {
                            div.scroll tabindex="0" role="region" aria-label={ "Assertions of " (lookup.value.as_str()) } {
                                table {
                                    caption { "Assertions" }
                                    thead { tr {
                                        th scope="col" { "Organisation" } th scope="col" { "Status" } th scope="col" { "TLP" }
                                        th scope="col" { "Confidence" } th scope="col" { "Valid" } th scope="col" { "Context" }
                                    } }
                                    tbody {
                                        @for assertion in &lookup.assertions {
                                            tr.assertion data-org=(org_name(&result.charter, &assertion.org)) {
                                                th scope="row" { (org_name(&result.charter, &assertion.org)) }
                                                td.status { (status_word(&assertion.state))
                                                    @if let Standing::Revoked { reason, note, .. } = &assertion.state {
                                                        " (" (format!("{reason:?}").to_lowercase()) @if let Some(note) = note { ": " (note) } ")"
                                                    }
                                                }
                                                td.tlp { (tlp_badge(assertion.tlp)) }
                                                td.confidence { (assertion.confidence.get()) }
                                                td { "from " (when(assertion.valid_from))
                                                    @if let Some(until) = assertion.valid_until { br; "until " (when(until)) } }
                                                td.context { (context(assertion)) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        @if !lookup.sightings.is_empty() {
                            div.scroll tabindex="0" role="region" aria-label={ "Sightings of " (lookup.value.as_str()) } {
                                table.sightings {
                                    caption { "Sightings" }
                                    thead { tr { th scope="col" { "Organisation" } th scope="col" { "Count" } th scope="col" { "First seen" } th scope="col" { "Last seen" } th scope="col" { "Note" } } }
                                    tbody {
                                        @for sighting in &lookup.sightings {
                                            tr.sighting data-org=(org_name(&result.charter, &sighting.org)) {
                                                th scope="row" { (org_name(&result.charter, &sighting.org)) }
                                                td { (sighting.count) }
                                                td { (when(sighting.first_seen)) }
                                                td { (when(sighting.last_seen)) }
                                                td { (sighting.note.as_deref().unwrap_or("")) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if !not_found.is_empty() {
                h3 { "Not found" }
                ul id="not-found" {
                    @for value in &not_found { li { code { (value.as_str()) } } }
                }
            }
            @if !result.pasted.invalid.is_empty() {
                h3 { "Not valid indicators" }
                ul id="invalid" {
                    @for (input, reason) in &result.pasted.invalid { li { code { (input) } ": " (reason) } }
                    @if result.pasted.more_invalid > 0 { li { "and " (result.pasted.more_invalid) " more" } }
                }
            }
            p.hint { "As of " (when(result.now)) "." }
        }
    }
}

fn status_word(state: &Standing) -> &'static str {
    match state {
        Standing::Active => "active",
        Standing::Expired => "expired",
        Standing::Revoked { .. } => "revoked",
    }
}

/// An assertion's labels and context, as text.
fn context(assertion: &crate::store::Assertion) -> Markup {
    let context = &assertion.context;
    html! {
        @if !assertion.labels.is_empty() {
            span.labels { @for label in &assertion.labels { span.label { (label) } " " } }
        }
        @if let Some(threat) = &context.threat { span { "Threat: " (threat) } br; }
        @if let Some(campaign) = &context.campaign { span { "Campaign: " (campaign) } br; }
        @if let Some(phase) = &context.kill_chain_phase { span { "Phase: " (phase) } br; }
        @if let Some(description) = &context.description { span.description { (description) } }
        @for reference in &context.external_references {
            br;
            // A reference's URL is shown, not linked: a member's link could point anywhere
            // (a `javascript:` one included).
            span.reference { (reference.source) @if let Some(id) = &reference.external_id { " " (id) }
                @if let Some(url) = &reference.url { " " code { (url) } } }
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ExportQuery {
    format: String,
}

/// `GET /ui/search/export?format=csv|stix`: the last search of this session, as a file.
pub(crate) async fn export(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(query): Query<ExportQuery>,
) -> Result<Response, Refusal> {
    let signed_in = signed_in(&state, &headers)?;
    let values = std::sync::Arc::clone(&signed_in.session.last_search);
    let (store, now) = (state.store.clone(), state.client.now());
    let charter = state.client.charter();
    let kept = crate::formats::stix::KeptIds::of_node(
        charter
            .charter()
            .node(&state.client.node_key())
            .map(|(member, _)| member.org),
    );
    let format = query.format;
    let lists = std::sync::Arc::clone(state.client.warninglists());
    let (media_type, name, bytes) = blocking(move || -> Result<_, Refusal> {
        let found = store.lookup_many(&values, now)?;
        // The entries behind the result, each once, in the order met.
        let mut ids = Vec::new();
        let mut listed = HashSet::new();
        for lookup in &found {
            for id in lookup
                .assertions
                .iter()
                .map(|assertion| assertion.entry)
                .chain(lookup.sightings.iter().map(|sighting| sighting.entry))
            {
                if listed.insert(id) {
                    ids.push(id);
                }
            }
        }
        match format.as_str() {
            "csv" => Ok((
                "text/csv; charset=utf-8",
                "threatmesh-search.csv",
                csv_of(&found, &charter, &lists),
            )),
            "stix" => {
                let mut entries = Vec::new();
                for id in ids {
                    let Some(entry) = store.entry(&id)? else {
                        continue;
                    };
                    let opened = store.opened(&id)?;
                    let Some(readable) = crate::formats::readable_entry(entry.entry(), opened)
                        .map(|e| e.into_owned())
                    else {
                        continue;
                    };
                    let Some(publisher) =
                        crate::formats::Publisher::of(charter.charter(), &readable.author)
                    else {
                        continue;
                    };
                    entries.push((readable, id, publisher));
                }
                let bundle = crate::formats::stix::export_bundle_marked(
                    entries
                        .iter()
                        .map(|(entry, id, publisher)| (entry, *id, publisher)),
                    kept,
                    Some(&lists),
                );
                Ok((
                    "application/stix+json;version=2.1",
                    "threatmesh-search.json",
                    serde_json::to_vec_pretty(&bundle).unwrap_or_default(),
                ))
            }
            other => Err(Refusal::Page(
                StatusCode::BAD_REQUEST,
                format!("format {other:?}: use csv or stix"),
            )),
        }
    })
    .await??;
    Ok((
        [
            (header::CONTENT_TYPE, media_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// The result as CSV: one row per assertion, then one per sighting, written as the CSV
/// export writes rows (every cell a spreadsheet would run as a formula neutralised).
fn csv_of(
    found: &[Lookup],
    charter: &threatmesh_protocol::SignedCharter,
    lists: &crate::warninglists::Warninglists,
) -> Vec<u8> {
    const HEADER: [&str; 13] = [
        "value",
        "kind",
        "organisation",
        "what",
        "status",
        "tlp",
        "confidence",
        "valid_from",
        "valid_until",
        "labels",
        "threat",
        "description",
        "warninglists",
    ];
    let mut rows: Vec<[String; 13]> = Vec::new();
    for lookup in found {
        let on = lists.ids(&lookup.value).join(";");
        for assertion in &lookup.assertions {
            rows.push([
                lookup.value.as_str().to_owned(),
                lookup.value.kind().as_str().to_owned(),
                org_name(charter, &assertion.org),
                "indicator".to_owned(),
                status_word(&assertion.state).to_owned(),
                assertion.tlp.label().to_owned(),
                assertion.confidence.get().to_string(),
                when(assertion.valid_from),
                assertion.valid_until.map(when).unwrap_or_default(),
                assertion.labels.join(";"),
                assertion.context.threat.clone().unwrap_or_default(),
                assertion.context.description.clone().unwrap_or_default(),
                on.clone(),
            ]);
        }
        for sighting in &lookup.sightings {
            rows.push([
                lookup.value.as_str().to_owned(),
                lookup.value.kind().as_str().to_owned(),
                org_name(charter, &sighting.org),
                "sighting".to_owned(),
                format!("seen {} times", sighting.count),
                String::new(),
                String::new(),
                when(sighting.first_seen),
                when(sighting.last_seen),
                String::new(),
                String::new(),
                sighting.note.clone().unwrap_or_default(),
                on.clone(),
            ]);
        }
    }
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = crate::formats::csv::write_row(&mut out, HEADER);
    for row in &rows {
        let _ = crate::formats::csv::write_row(&mut out, row.iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn values_come_from_lines_and_from_prose_defanged_or_not() {
        let pasted = read_pasted(
            "198.51.100.7\n\
             hxxp://evil[.]example/payload\n\
             not-a-value!\n\
             The C2 at 203.0.113.9, and mail from bad@phish.example. Hash: \
             d41d8cd98f00b204e9800998ecf8427e.\n\
             198.51.100.7\n",
        );
        let values: Vec<&str> = pasted.values.iter().map(Value::as_str).collect();
        assert_eq!(
            values,
            [
                "198.51.100.7",
                "http://evil.example/payload",
                "203.0.113.9",
                "bad@phish.example",
                "d41d8cd98f00b204e9800998ecf8427e",
            ]
        );
        assert_eq!(pasted.invalid.len(), 1, "{:?}", pasted.invalid);
        assert_eq!(pasted.invalid[0].0, "not-a-value!");
    }

    #[test]
    fn at_most_the_limit_is_looked_up() {
        let text: String = (0..MAX_SEARCH_VALUES + 5)
            .map(|n| format!("10.{}.{}.{}\n", n / 65_536, (n / 256) % 256, n % 256))
            .collect();
        let pasted = read_pasted(&text);
        assert_eq!(pasted.values.len(), MAX_SEARCH_VALUES);
        assert_eq!(pasted.dropped, 5);
    }
}
