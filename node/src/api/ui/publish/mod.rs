//! Publish: a form for a few values, and a file upload (STIX, MISP, CSV) that shows the
//! importer's dry-run report and publishes only when the analyst confirms it.
//!
//! Errors are shown next to the field they concern, with what was typed kept. A form
//! posted after its session ended is not lost: the sign-in page carries it in hidden
//! fields, and signing in again shows the form filled in as it was ([`Draft`]).
//!
//! `render` draws the page; `upload` reads an uploaded file and publishes it once
//! confirmed.

mod render;
mod upload;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use threatmesh_protocol::bundle::{Distribution, Tlp};
use threatmesh_protocol::item::{Confidence, Context, Indicator, Item};
use threatmesh_protocol::{Hash, PublicKey, Timestamp, Value};

use super::pages::signin;
use super::{Fields, Refusal, form_of, signed_in};
use crate::api::ApiState;
use crate::api::warninglists::{HeldBack, hold_back};

pub(crate) use render::render;
pub(crate) use upload::{confirm, import};

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
            .publisher
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

#[cfg(test)]
mod tests;
