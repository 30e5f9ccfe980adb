//! File upload: the importer's dry-run report of an uploaded STIX, MISP or CSV file, kept
//! with the session until the analyst confirms and it is published.

use std::sync::Arc;

use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use threatmesh_protocol::bundle::Tlp;

use crate::api::exchange::{ImportOutcome, publish_import};
use crate::api::ui::pages::frame;
use crate::api::ui::session::{PendingImport, random_token};
use crate::api::ui::{Fields, Refusal, form_of, html as respond};
use crate::api::warninglists::{HeldBack, hold_back};
use crate::api::{ApiState, MAX_BODY_BYTES, blocking};
use crate::formats::{Import, csv, misp, stix};

/// `POST /ui/import`: reads the uploaded file and shows the importer's report; nothing is
/// published until the analyst confirms.
pub(crate) async fn import(
    State(state): State<ApiState>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Result<Response, Refusal> {
    let too_large = || {
        Refusal::Page(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "The file is larger than the import limit of {} MiB. Split it, or import it \
                 with the API or the CLI in parts.",
                MAX_BODY_BYTES / (1024 * 1024)
            ),
        )
    };
    let mut fields = Fields::default();
    let mut file: Option<(String, axum::body::Bytes)> = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(error) if error.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(too_large());
            }
            Err(error) => {
                return Err(Refusal::Page(
                    StatusCode::BAD_REQUEST,
                    format!("The upload could not be read: {}", error.body_text()),
                ));
            }
        };
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            let file_name = field.file_name().unwrap_or("upload").to_owned();
            match field.bytes().await {
                Ok(bytes) => file = Some((file_name, bytes)),
                Err(error) if error.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    return Err(too_large());
                }
                Err(error) => {
                    return Err(Refusal::Page(
                        StatusCode::BAD_REQUEST,
                        format!("The file could not be read: {}", error.body_text()),
                    ));
                }
            }
        } else if let Ok(text) = field.text().await {
            fields.0.push((name, text));
        }
    }
    let signed_in = form_of(&state, &headers, &fields)?;
    if !signed_in.may_write() {
        return Err(Refusal::ReadOnly);
    }
    let Some((file_name, bytes)) = file.filter(|(_, bytes)| !bytes.is_empty()) else {
        return Err(Refusal::Page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Choose a file to import.".to_owned(),
        ));
    };
    let default_tlp: Tlp = fields.get("tlp").unwrap_or("amber").parse().map_err(
        |error: threatmesh_protocol::bundle::UnknownTlp| {
            Refusal::Page(StatusCode::UNPROCESSABLE_ENTITY, error.to_string())
        },
    )?;
    let format = fields.get("format").unwrap_or_default().to_owned();
    let now = state.client.now();
    let read_format = format.clone();
    let imported: Result<Import, String> = blocking(move || match read_format.as_str() {
        "stix" => stix::import(&bytes, now).map_err(|error| error.to_string()),
        "misp" => misp::import(&bytes, now, &misp::MispOptions::default())
            .map_err(|error| error.to_string()),
        "csv" => {
            csv::import(&bytes, now, &csv::CsvOptions::default()).map_err(|error| error.to_string())
        }
        other => Err(format!(
            "no importer for {other:?}: choose STIX, MISP or CSV"
        )),
    })
    .await?;
    let import = match imported {
        Ok(import) => import,
        Err(error) => {
            return Err(Refusal::Page(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{file_name} could not be imported as {format}: {error}"),
            ));
        }
    };
    let id = random_token().map_err(|_| {
        Refusal::Page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The node could not name the import.".to_owned(),
        )
    })?;
    let report = import.report.clone();
    let items = import.items.len();
    let listed = would_hold_back(&state, &import, default_tlp);
    state.console.sessions.keep_import(
        &signed_in.id,
        PendingImport {
            id: id.clone(),
            file_name: file_name.clone(),
            import,
            default_tlp,
        },
    );
    let body = html! {
        section id="dry-run" aria-labelledby="dry-run-heading" {
            h2 id="dry-run-heading" { "What the importer read in " code { (file_name) } }
            p role="status" {
                (report.read) " read: " (report.indicators) " indicator(s), " (report.sightings) " sighting(s), "
                (report.revocations) " revocation(s) to publish; " (report.context) " used as context; "
                (report.refused.len()) " refused."
            }
            @if !report.unused.is_empty() {
                p { "Not used: " (report.unused.iter().map(|(kind, count)| format!("{count} {kind}")).collect::<Vec<_>>().join(", ")) "." }
            }
            @if !report.refused.is_empty() {
                details open[report.refused.len() <= 20] {
                    summary { "Refused (" (report.refused.len()) ")" }
                    ul id="refused" {
                        @for refusal in report.refused.iter().take(200) { li { code { (refusal.at) } ": " (refusal.reason) } }
                        @if report.refused.len() > 200 { li { "and " (report.refused.len() - 200) " more" } }
                    }
                }
            }
            p { "Unmarked items will be " (default_tlp.label()) "." }
            @if !listed.is_empty() {
                p.notice role="alert" { (listed.len()) " indicator(s) are on a warninglist and will be held back unless you tick the box below." }
                (held_back_list(&listed))
            }
        }
        @if items > 0 {
            form id="import-confirm" method="post" action="/ui/import/confirm" {
                input type="hidden" name="csrf" value=(signed_in.session.csrf);
                input type="hidden" name="import" value=(id);
                @if !listed.is_empty() {
                    label.check { input type="checkbox" name="ignore_warninglists" value="on"; " Publish the values on a warninglist too" }
                }
                button id="import-confirm-submit" type="submit" { "Publish " (items) " item(s)" }
                " "
                a href="/ui/publish" { "Cancel" }
            }
        } @else {
            p { "Nothing in this file can be published. " a href="/ui/publish" { "Back" } }
        }
    };
    Ok(respond(
        StatusCode::OK,
        frame("Confirm the import", "publish", Some(&signed_in), body),
    ))
}

/// `POST /ui/import/confirm`: publishes the import the session holds.
pub(crate) async fn confirm(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Refusal> {
    let fields = Fields::parse(&body);
    let signed_in = form_of(&state, &headers, &fields)?;
    if !signed_in.may_write() {
        return Err(Refusal::ReadOnly);
    }
    let wanted = fields.get("import").unwrap_or_default();
    // Taken under the sessions' lock: a double click confirms once.
    let Some(pending) = state.console.sessions.take_import(&signed_in.id, wanted) else {
        return Err(Refusal::Page(
            StatusCode::CONFLICT,
            "This import is no longer waiting (it was published, replaced by another, or \
             its session ended). Upload the file again."
                .to_owned(),
        ));
    };
    let pending = Arc::unwrap_or_clone(pending);
    let file_name = pending.file_name.clone();
    let ignore_warninglists = fields.get("ignore_warninglists") == Some("on");
    let outcome: ImportOutcome = publish_import(
        &state,
        pending.import,
        pending.default_tlp,
        ignore_warninglists,
    )
    .await;
    let failed = outcome.published.is_empty() && !outcome.not_published.is_empty();
    let body = html! {
        section id="imported" aria-labelledby="imported-heading" role="status" {
            h2 id="imported-heading" { "Imported " code { (file_name) } }
            @for group in &outcome.published {
                p { (group.items) " item(s) published as " (group.tlp.label()) " in " (group.entries.len()) " entr"
                    (if group.entries.len() == 1 { "y" } else { "ies" }) "." }
            }
            @for group in &outcome.not_published {
                p.field-error role="alert" { (group.items) " item(s) marked " (group.tlp.label()) " not published: " (group.error) }
            }
            (held_back_notice(&outcome.held_back))
            p { a href="/ui/recent" { "See them in Recent" } " · " a href="/ui/publish" { "Publish more" } }
        }
    };
    let status = if failed {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok(respond(status, frame("Import", "publish", Some(&signed_in), body)).into_response())
}

/// The indicators of `import` that are on a warninglist, numbered as confirming would.
fn would_hold_back(state: &ApiState, import: &Import, default_tlp: Tlp) -> Vec<HeldBack> {
    let lists = state.client.warninglists();
    let mut held = Vec::new();
    let mut index = 0;
    for (_, items) in import.clone().into_by_tlp(default_tlp) {
        let asked = items.len();
        held.extend(hold_back(lists, items, false, index).1);
        index += asked;
    }
    held
}

/// Most held-back values a page lists (the count is always given).
const MAX_LISTED_HELD: usize = 200;

pub(super) fn held_back_list(held: &[HeldBack]) -> Markup {
    html! {
        ul id="held-back" {
            @for item in held.iter().take(MAX_LISTED_HELD) {
                li {
                    code { (item.value) } " (" (item.kind) ") is on "
                    @for (n, list) in item.warninglists.iter().enumerate() {
                        @if n > 0 { ", " }
                        span.warninglist title=(list.name) { (list.id) }
                    }
                }
            }
            @if held.len() > MAX_LISTED_HELD { li { "and " (held.len() - MAX_LISTED_HELD) " more" } }
        }
    }
}

/// What a page says about indicators held back for being on a warninglist.
pub(super) fn held_back_notice(held: &[HeldBack]) -> Markup {
    html! {
        @if !held.is_empty() {
            p.notice role="alert" {
                (held.len()) " indicator(s) held back: on a warninglist (a likely false positive). "
                "Tick \"Publish values on a warninglist too\" to publish them anyway."
            }
            (held_back_list(held))
        }
    }
}
