//! The publish page: the form with what was typed and the errors by field, the outcome of
//! the last form, and the file upload.

use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use threatmesh_protocol::PublicKey;
use threatmesh_protocol::bundle::Tlp;

use crate::api::ui::pages::{frame, tlp_value};
use crate::api::ui::{SignedIn, html as respond};
use crate::api::{ApiState, MAX_BODY_BYTES};

use super::upload::held_back_notice;
use super::{Draft, MAX_EXPIRY_DAYS, Outcome};

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
