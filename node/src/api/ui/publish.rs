//! Publish: a form for a few values, and a file upload (STIX, MISP, CSV) that shows the
//! importer's dry-run report and publishes only when the analyst confirms it.
//!
//! Errors are shown next to the field they concern, with what was typed kept. A form
//! posted after its session ended is not lost: the sign-in page carries it in hidden
//! fields, and signing in again shows the form filled in as it was ([`Draft`]).

use std::sync::Arc;

use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use threatmesh_protocol::bundle::{Distribution, Tlp};
use threatmesh_protocol::item::{Confidence, Context, Indicator, Item};
use threatmesh_protocol::{Hash, PublicKey, Timestamp, Value};

use super::pages::{frame, signin, tlp_value};
use super::session::{PendingImport, random_token};
use super::{Fields, Refusal, SignedIn, form_of, html as respond, signed_in};
use crate::api::exchange::{ImportOutcome, publish_import};
use crate::api::warninglists::{HeldBack, hold_back};
use crate::api::{ApiState, MAX_BODY_BYTES, blocking};
use crate::formats::{Import, csv, misp, stix};

/// Most values the publish form takes at once (larger sets go by file).
pub(crate) const MAX_FORM_VALUES: usize = 1_000;

/// Most bad lines the form reports at once.
const MAX_REPORTED_ERRORS: usize = 20;

/// Largest publish form carried through sign-in: what a person types, not a file.
const MAX_CARRIED_BYTES: usize = 256 * 1024;

/// Longest expiry the form offers, in days.
const MAX_EXPIRY_DAYS: u64 = 3_650;

/// The publish form as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Draft {
    values: String,
    tlp: String,
    confidence: String,
    expires_days: String,
    labels: String,
    description: String,
    recipients: Vec<String>,
    /// "on" when the analyst ticked "publish values on a warninglist too".
    ignore_warninglists: String,
}

impl Draft {
    /// The form's fields, as posted; `prefix` is empty for the form itself and `carry_`
    /// for a form carried through sign-in.
    fn read(fields: &Fields, prefix: &str) -> Draft {
        let get = |name: &str| {
            fields
                .get(&format!("{prefix}{name}"))
                .unwrap_or_default()
                .to_owned()
        };
        Draft {
            values: get("values"),
            tlp: get("tlp"),
            confidence: get("confidence"),
            expires_days: get("expires_days"),
            labels: get("labels"),
            description: get("description"),
            recipients: fields
                .all(&format!("{prefix}recipients"))
                .map(str::to_owned)
                .collect(),
            ignore_warninglists: get("ignore_warninglists"),
        }
    }

    /// The draft a sign-in form carries, if it carries one.
    pub(crate) fn carried(fields: &Fields) -> Option<Draft> {
        (fields.get("carry") == Some("publish")).then(|| Draft::read(fields, "carry_"))
    }

    /// Hidden fields that carry this draft through the sign-in form.
    pub(crate) fn carry(&self) -> Markup {
        html! {
            input type="hidden" name="carry" value="publish";
            input type="hidden" name="carry_values" value=(self.values);
            input type="hidden" name="carry_tlp" value=(self.tlp);
            input type="hidden" name="carry_confidence" value=(self.confidence);
            input type="hidden" name="carry_expires_days" value=(self.expires_days);
            input type="hidden" name="carry_labels" value=(self.labels);
            input type="hidden" name="carry_description" value=(self.description);
            input type="hidden" name="carry_ignore_warninglists" value=(self.ignore_warninglists);
            @for recipient in &self.recipients {
                input type="hidden" name="carry_recipients" value=(recipient);
            }
        }
    }

    fn tlp_or_default(&self) -> &str {
        if self.tlp.is_empty() {
            "amber"
        } else {
            &self.tlp
        }
    }
}

/// What the form asks to publish, once checked.
#[derive(Debug)]
struct Checked {
    tlp: Tlp,
    distribution: Distribution,
    items: Vec<Item>,
}

/// Field errors, by field name.
type FieldErrors = Vec<(&'static str, String)>;

/// Checks `draft`: every problem is reported against its field.
fn check(draft: &Draft, now: Timestamp) -> Result<Checked, FieldErrors> {
    let mut errors: FieldErrors = Vec::new();
    let tlp: Option<Tlp> = match draft.tlp_or_default().parse() {
        Ok(tlp) => Some(tlp),
        Err(error) => {
            errors.push(("tlp", error.to_string()));
            None
        }
    };
    let confidence = match draft.confidence.trim() {
        "" => Some(Confidence::DEFAULT),
        text => match text
            .parse::<u8>()
            .ok()
            .and_then(|n| Confidence::new(n).ok())
        {
            Some(confidence) => Some(confidence),
            None => {
                errors.push((
                    "confidence",
                    format!("{text:?} is not a whole number from 0 to 100"),
                ));
                None
            }
        },
    };
    let valid_until = match draft.expires_days.trim() {
        "" => Some(None),
        text => match text.parse::<u64>() {
            Ok(days) if (1..=MAX_EXPIRY_DAYS).contains(&days) => {
                Some(Some(Timestamp(now.0.saturating_add(days * 86_400_000))))
            }
            _ => {
                errors.push((
                    "expires_days",
                    format!("{text:?}: give a number of days from 1 to {MAX_EXPIRY_DAYS}, or leave it empty for no expiry"),
                ));
                None
            }
        },
    };
    let labels: Vec<String> = draft
        .labels
        .split(',')
        .map(str::trim)
        .filter(|label| !label.is_empty())
        .map(str::to_owned)
        .collect();
    let description = Some(draft.description.trim())
        .filter(|text| !text.is_empty())
        .map(str::to_owned);
    let mut values = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut bad_values = Vec::new();
    for (number, line) in draft.values.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        // Past the limit nothing more is read: the form is refused anyway.
        if values.len() > MAX_FORM_VALUES || bad_values.len() >= MAX_REPORTED_ERRORS {
            break;
        }
        match Value::detect(line) {
            Ok(value) => {
                if seen.insert(value.clone()) {
                    values.push(value);
                }
            }
            Err(error) => bad_values.push(format!("line {}: {error}", number + 1)),
        }
    }
    if !bad_values.is_empty() {
        errors.push(("values", bad_values.join("; ")));
    } else if values.is_empty() {
        errors.push((
            "values",
            "enter at least one value, one per line".to_owned(),
        ));
    } else if values.len() > MAX_FORM_VALUES {
        errors.push((
            "values",
            format!("more than {MAX_FORM_VALUES} values: the form takes at most {MAX_FORM_VALUES}; upload a file for more"),
        ));
    }
    let mut recipients = Vec::new();
    for text in &draft.recipients {
        match text.parse::<PublicKey>() {
            Ok(org) => recipients.push(org),
            Err(_) => errors.push(("recipients", format!("{text:?} is not an organisation key"))),
        }
    }
    let restricted = tlp.is_some_and(Tlp::is_restricted);
    if restricted
        && recipients.is_empty()
        && !errors.iter().any(|(field, _)| *field == "recipients")
    {
        errors.push((
            "recipients",
            format!(
                "{} content is sealed for named organisations: choose at least one recipient",
                tlp.map_or("", Tlp::label)
            ),
        ));
    }
    let (Some(tlp), Some(confidence), Some(valid_until)) = (tlp, confidence, valid_until) else {
        return Err(errors);
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let items: Vec<Item> = values
        .into_iter()
        .map(|value| {
            Item::Indicator(Indicator {
                value,
                confidence,
                valid_from: now,
                valid_until,
                labels: labels.clone(),
                context: Context {
                    description: description.clone(),
                    ..Context::default()
                },
            })
        })
        .collect();
    for item in &items {
        if let Err(error) = item.validate() {
            let field = match error.field.as_str() {
                "labels" => "labels",
                field if field.contains("description") => "description",
                _ => "values",
            };
            errors.push((field, format!("{}: {error}", item.value())));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Checked {
        tlp,
        distribution: if restricted {
            Distribution::Recipients(recipients)
        } else {
            Distribution::Federation
        },
        items,
    })
}

/// What happened to the last form, for the page.
pub(crate) enum Outcome {
    /// Published: the entries made, and the indicators held back for being on a
    /// warninglist (nothing published when every indicator was).
    Published(Vec<Hash>, Vec<HeldBack>),
    /// Refused: the errors, by field.
    Refused(FieldErrors),
}

/// `GET /ui/publish`.
pub(crate) async fn page(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let signed_in = signed_in(&state, &headers)?;
    if !signed_in.may_write() {
        return Err(Refusal::ReadOnly);
    }
    // A form carried through sign-in is shown once, as it was typed.
    let draft = match &signed_in.session.draft {
        Some(draft) => {
            state.console.sessions.update(&signed_in.id, |session| {
                session.draft = None;
            });
            Draft::clone(draft)
        }
        None => Draft::default(),
    };
    Ok(render(&state, &signed_in, &draft, None).await)
}

/// The publish page for `draft`, after `outcome` if a form was just sent.
pub(crate) async fn render(
    state: &ApiState,
    signed_in: &SignedIn,
    draft: &Draft,
    outcome: Option<Outcome>,
) -> Response {
    let charter = state.client.charter();
    let own = charter
        .charter()
        .node(&state.client.node_key())
        .map(|(member, _)| member.org);
    // Who can be named: members that may read and have an encryption key; this node's
    // organisation is always a recipient of what it seals.
    let recipients: Vec<(PublicKey, String)> = charter
        .charter()
        .members
        .iter()
        .filter(|member| {
            member.roles.read && member.encryption_key.is_some() && Some(member.org) != own
        })
        .map(|member| (member.org, member.name.clone()))
        .collect();
    let (status, errors, published) = match outcome {
        None => (StatusCode::OK, Vec::new(), None),
        Some(Outcome::Published(entries, held)) => {
            let status = if entries.is_empty() {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            (status, Vec::new(), Some((entries, held)))
        }
        Some(Outcome::Refused(errors)) => (StatusCode::UNPROCESSABLE_ENTITY, errors, None),
    };
    let error_of = |field: &str| -> Option<String> {
        let found: Vec<&str> = errors
            .iter()
            .filter(|(name, _)| *name == field)
            .map(|(_, message)| message.as_str())
            .collect();
        (!found.is_empty()).then(|| found.join("; "))
    };
    let field_error = |field: &str| {
        html! {
            @if let Some(message) = error_of(field) {
                p.field-error id={ "error-" (field) } role="alert" { (message) }
            }
        }
    };
    let described = |field: &str| error_of(field).map(|_| format!("error-{field}"));
    let chosen_tlp = draft.tlp_or_default();
    let body = html! {
        @if let Some((entries, held)) = &published {
            div id="published" role="status" {
                @if !entries.is_empty() {
                    p { "Published: " (entries.len()) " entr" (if entries.len() == 1 { "y" } else { "ies" }) ", now on their way to the federation." }
                    ul { @for entry in entries { li { code { (entry) } } } }
                }
                (held_back_notice(held))
            }
        }
        @if !errors.is_empty() {
            p.notice role="alert" { "Nothing was published: correct the fields marked below." }
        }
        section aria-labelledby="form-heading" {
            h2 id="form-heading" { "Publish indicators" }
            form id="publish" method="post" action="/ui/publish" novalidate {
                input type="hidden" name="csrf" value=(signed_in.session.csrf);
                label for="values" { "Values, one per line" }
                textarea id="values" name="values" rows="6" required
                    aria-invalid=[error_of("values").map(|_| "true")] aria-describedby=[described("values")] { (draft.values) }
                (field_error("values"))
                div.row {
                    div {
                        label for="tlp" { "TLP" }
                        select id="tlp" name="tlp" aria-describedby=[described("tlp")] {
                            @for level in [Tlp::Clear, Tlp::Green, Tlp::Amber, Tlp::AmberStrict, Tlp::Red] {
                                option value=(tlp_value(level)) selected[tlp_value(level) == chosen_tlp] { (level.label()) }
                            }
                        }
                        (field_error("tlp"))
                    }
                    div {
                        label for="confidence" { "Confidence (0–100)" }
                        input id="confidence" name="confidence" type="number" min="0" max="100" inputmode="numeric"
                            value=(if draft.confidence.is_empty() { "50" } else { &draft.confidence })
                            aria-invalid=[error_of("confidence").map(|_| "true")] aria-describedby=[described("confidence")];
                        (field_error("confidence"))
                    }
                    div {
                        label for="expires_days" { "Expires after (days)" }
                        input id="expires_days" name="expires_days" type="number" min="1" max=(MAX_EXPIRY_DAYS) inputmode="numeric"
                            value=(draft.expires_days) placeholder="never"
                            aria-invalid=[error_of("expires_days").map(|_| "true")] aria-describedby=[described("expires_days")];
                        (field_error("expires_days"))
                    }
                }
                label for="labels" { "Labels, comma separated" }
                input id="labels" name="labels" type="text" value=(draft.labels) placeholder="c2, phishing"
                    aria-invalid=[error_of("labels").map(|_| "true")] aria-describedby=[described("labels")];
                (field_error("labels"))
                label for="description" { "Context" }
                input id="description" name="description" type="text" value=(draft.description)
                    aria-invalid=[error_of("description").map(|_| "true")] aria-describedby=[described("description")];
                (field_error("description"))
                fieldset id="recipients" data-for-tlp="red amber+strict" {
                    legend { "Recipients (for TLP:RED and TLP:AMBER+STRICT: sealed so only they can read it)" }
                    @if recipients.is_empty() {
                        p.hint { "No other member that may read has an encryption key in the charter." }
                    }
                    @for (org, name) in &recipients {
                        @let key = org.to_string();
                        label.check {
                            input type="checkbox" name="recipients" value=(key)
                                checked[draft.recipients.contains(&key)];
                            " " (name)
                        }
                    }
                    (field_error("recipients"))
                }
                label.check {
                    input id="ignore_warninglists" type="checkbox" name="ignore_warninglists" value="on"
                        checked[draft.ignore_warninglists == "on"];
                    " Publish values on a warninglist too (public resolvers, private addresses, top domains, ...); by default they are held back"
                }
                button id="publish-submit" type="submit" { "Publish" }
            }
        }
        section aria-labelledby="import-heading" {
            h2 id="import-heading" { "Import a file" }
            form id="import" method="post" action="/ui/import" enctype="multipart/form-data" {
                input type="hidden" name="csrf" value=(signed_in.session.csrf);
                div.row {
                    div {
                        label for="format" { "Format" }
                        select id="format" name="format" {
                            option value="stix" { "STIX 2.1 bundle" }
                            option value="misp" { "MISP event" }
                            option value="csv" { "CSV or plain list" }
                        }
                    }
                    div {
                        label for="import-tlp" { "TLP of unmarked items" }
                        select id="import-tlp" name="tlp" {
                            @for level in [Tlp::Clear, Tlp::Green, Tlp::Amber] {
                                option value=(tlp_value(level)) selected[level == Tlp::Amber] { (level.label()) }
                            }
                        }
                    }
                }
                label for="file" { "File (at most " (MAX_BODY_BYTES / (1024 * 1024)) " MiB)" }
                input id="file" name="file" type="file" required accept=".json,.csv,.txt";
                p.hint { "Nothing is published yet: the next page shows what the importer read, to confirm." }
                button id="import-submit" type="submit" { "Read the file" }
            }
        }
    };
    respond(status, frame("Publish", "publish", Some(signed_in), body))
}

/// `POST /ui/publish`.
pub(crate) async fn publish(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Refusal> {
    let fields = Fields::parse(&body);
    let draft = Draft::read(&fields, "");
    let signed_in = match form_of(&state, &headers, &fields) {
        Ok(signed_in) => signed_in,
        // The session ended while the analyst typed: keep what was typed (a form of a
        // size a person types; a larger one is not echoed back).
        Err(Refusal::SignIn) => {
            let carried = (body.len() <= MAX_CARRIED_BYTES).then_some(&draft);
            let secure = super::served_over_tls(&headers);
            return Ok(signin(StatusCode::UNAUTHORIZED, None, carried, secure));
        }
        Err(refusal) => return Err(refusal),
    };
    if !signed_in.may_write() {
        return Err(Refusal::ReadOnly);
    }
    let checked = match check(&draft, state.client.now()) {
        Ok(checked) => checked,
        Err(errors) => {
            return Ok(render(&state, &signed_in, &draft, Some(Outcome::Refused(errors))).await);
        }
    };
    let (items, held) = hold_back(
        state.client.warninglists(),
        checked.items,
        draft.ignore_warninglists == "on",
        0,
    );
    let published = if items.is_empty() {
        Ok(Vec::new())
    } else {
        state
            .client
            .publish(checked.tlp, checked.distribution, items)
            .await
    };
    match published {
        Ok(entries) => {
            let kept = Draft {
                tlp: draft.tlp.clone(),
                confidence: draft.confidence.clone(),
                ..Draft::default()
            };
            let outcome = Outcome::Published(entries, held);
            Ok(render(&state, &signed_in, &kept, Some(outcome)).await)
        }
        Err(error) => {
            let field = match &error {
                crate::publish::Error::Recipient { .. } => "recipients",
                refused if refused.is_refused() => "values",
                _ => {
                    return Err(crate::api::ApiError::from(error).into());
                }
            };
            let errors = vec![(field, error.to_string())];
            Ok(render(&state, &signed_in, &draft, Some(Outcome::Refused(errors))).await)
        }
    }
}

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

fn held_back_list(held: &[HeldBack]) -> Markup {
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
fn held_back_notice(held: &[HeldBack]) -> Markup {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn draft(values: &str, tlp: &str) -> Draft {
        Draft {
            values: values.to_owned(),
            tlp: tlp.to_owned(),
            ..Draft::default()
        }
    }

    #[test]
    fn each_problem_is_reported_against_its_field() {
        let now = Timestamp(1_000);
        let mut typed = draft("198.51.100.1\nnot a value\n", "purple");
        typed.confidence = "150".into();
        typed.expires_days = "-3".into();
        let errors = check(&typed, now).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|(field, _)| *field).collect();
        for field in ["tlp", "confidence", "expires_days", "values"] {
            assert!(fields.contains(&field), "{field} in {errors:?}");
        }
        assert!(
            errors.iter().any(|(_, message)| message.contains("line 2")),
            "{errors:?}"
        );
    }

    #[test]
    fn restricted_markings_need_recipients_and_others_go_to_the_federation() {
        let now = Timestamp(1_000);
        let errors = check(&draft("198.51.100.1", "red"), now).unwrap_err();
        assert_eq!(errors[0].0, "recipients");
        let mut typed = draft("198.51.100.1\nhxxp://evil[.]example/x\n", "green");
        typed.labels = "c2, , phishing".into();
        typed.expires_days = "30".into();
        let checked = check(&typed, now).unwrap();
        assert_eq!(checked.distribution, Distribution::Federation);
        assert_eq!(checked.items.len(), 2);
        let Item::Indicator(indicator) = &checked.items[1] else {
            panic!("an indicator");
        };
        assert_eq!(indicator.value.as_str(), "http://evil.example/x");
        assert_eq!(indicator.labels, ["c2", "phishing"]);
        assert_eq!(
            indicator.valid_until,
            Some(Timestamp(1_000 + 30 * 86_400_000))
        );
    }

    #[test]
    fn a_draft_survives_being_carried_through_sign_in() {
        let typed = Draft {
            values: "198.51.100.1\n<script>x</script>".into(),
            tlp: "red".into(),
            confidence: "80".into(),
            expires_days: "7".into(),
            labels: "c2".into(),
            description: "\"quoted\" & <b>".into(),
            recipients: vec!["aa".into(), "bb".into()],
            ignore_warninglists: "on".into(),
        };
        // The hidden fields, as a browser would post them back.
        let markup = typed.carry().into_string();
        let mut posted = url::form_urlencoded::Serializer::new(String::new());
        for input in markup.split("<input ").skip(1) {
            let attribute = |name: &str| {
                let start = input.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                let end = start + input[start..].find('"').unwrap();
                input[start..end]
                    .replace("&quot;", "\"")
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&amp;", "&")
            };
            posted.append_pair(&attribute("name"), &attribute("value"));
        }
        let fields = Fields::parse(posted.finish().as_bytes());
        assert_eq!(Draft::carried(&fields), Some(typed));
        assert!(!markup.contains("<script>"), "{markup}");
    }
}
