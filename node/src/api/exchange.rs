//! `POST /api/v1/import/{format}`: a STIX 2.1 bundle, a MISP event or a CSV / plain list
//! in, indicators published to the federation out, with the importer's report.
//!
//! The file is the request body, as it is on disk. Options are query parameters: `tlp`
//! (the marking of items the file leaves unmarked, default amber), `dry_run` (report
//! only, publish nothing), and per format `column`, `delimiter`, `kind`, `header` (CSV)
//! or `include_non_ids` (MISP), and `ignore_warninglists` (publish indicators on a
//! warninglist too; by default they are held back and listed in the report, also on a dry
//! run). Items are published one TLP group at a time; a group the node refuses (TLP:RED in
//! the clear, for one) is reported and the others still go out.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use threatmesh_protocol::bundle::{Distribution, Tlp};
use threatmesh_protocol::{Hash, Kind};

use super::warninglists::{HeldBack, hold_back};
use super::{ApiError, ApiState, blocking};
use crate::formats::{Import, ImportReport, csv, misp, stix};

/// The options of an import, from the query string.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ImportQuery {
    tlp: Option<String>,
    #[serde(default)]
    dry_run: bool,
    column: Option<String>,
    delimiter: Option<String>,
    kind: Option<String>,
    header: Option<bool>,
    #[serde(default)]
    include_non_ids: bool,
    #[serde(default)]
    ignore_warninglists: bool,
}

/// What an import did.
#[derive(Debug, Serialize)]
pub(super) struct Imported {
    /// What the importer made of the file.
    report: ImportReport,
    /// The groups published, one per TLP.
    published: Vec<Published>,
    /// The groups the node refused to publish, with why.
    not_published: Vec<NotPublished>,
    /// Indicators not published because their value is on a warninglist (on a dry run:
    /// those that would be held back).
    held_back: Vec<HeldBack>,
    /// True when nothing was published because the request asked for a dry run.
    dry_run: bool,
}

/// One TLP group of an import, published.
#[derive(Debug, Serialize)]
pub(crate) struct Published {
    pub(crate) tlp: Tlp,
    pub(crate) items: usize,
    pub(crate) entries: Vec<Hash>,
}

/// One TLP group of an import the node refused to publish.
#[derive(Debug, Serialize)]
pub(crate) struct NotPublished {
    pub(crate) tlp: Tlp,
    pub(crate) items: usize,
    pub(crate) error: String,
}

/// What publishing an import did, group by group.
#[derive(Debug, Default)]
pub(crate) struct ImportOutcome {
    pub(crate) published: Vec<Published>,
    pub(crate) not_published: Vec<NotPublished>,
    /// Indicators left out because their value is on a warninglist; `index` counts the
    /// items in the order they were published, group after group.
    pub(crate) held_back: Vec<HeldBack>,
}

/// Publishes what `import` read, one TLP group at a time (items the file left unmarked
/// as `default_tlp`); a group the node refuses is reported and the others still go out.
/// Indicators on a warninglist are held back unless `ignore_warninglists`.
pub(crate) async fn publish_import(
    state: &ApiState,
    import: Import,
    default_tlp: Tlp,
    ignore_warninglists: bool,
) -> ImportOutcome {
    let mut outcome = ImportOutcome::default();
    let mut index = 0;
    for (tlp, items) in import.into_by_tlp(default_tlp) {
        let asked = items.len();
        let (items, held) = hold_back(
            state.client.warninglists(),
            items,
            ignore_warninglists,
            index,
        );
        index += asked;
        outcome.held_back.extend(held);
        if items.is_empty() {
            continue;
        }
        let count = items.len();
        match state
            .publisher
            .publish(tlp, Distribution::Federation, items)
            .await
        {
            Ok(entries) => outcome.published.push(Published {
                tlp,
                items: count,
                entries,
            }),
            Err(error) => outcome.not_published.push(NotPublished {
                tlp,
                items: count,
                error: error.to_string(),
            }),
        }
    }
    outcome
}

fn unprocessable(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
}

/// Reads the CSV options of `query`.
fn csv_options(query: &ImportQuery) -> Result<csv::CsvOptions, ApiError> {
    let column = query.column.as_deref().map(|column| match column.parse() {
        Ok(index) => csv::Column::Index(index),
        Err(_) => csv::Column::Name(column.to_owned()),
    });
    let delimiter = match query.delimiter.as_deref() {
        None => None,
        Some("tab" | "\\t" | "\t") => Some(b'\t'),
        Some(text) if text.len() == 1 => Some(text.as_bytes()[0]),
        Some(text) => {
            return Err(unprocessable(format!(
                "delimiter: {text:?} is not one character (or \"tab\")"
            )));
        }
    };
    let kind = query
        .kind
        .as_deref()
        .map(str::parse::<Kind>)
        .transpose()
        .map_err(|error| unprocessable(format!("kind: {error}")))?;
    Ok(csv::CsvOptions {
        column,
        delimiter,
        kind,
        has_header: query.header,
    })
}

pub(super) async fn import(
    State(state): State<ApiState>,
    Path(format): Path<String>,
    Query(query): Query<ImportQuery>,
    body: Bytes,
) -> Result<(StatusCode, Json<Imported>), ApiError> {
    let default_tlp: Tlp = match &query.tlp {
        Some(text) => text
            .parse()
            .map_err(|error| unprocessable(format!("tlp: {error}")))?,
        None => Tlp::Amber,
    };
    let now = state.client.now();
    let mut import: Import = match format.as_str() {
        "stix" => {
            blocking(move || stix::import(&body, now).map_err(|error| error.to_string())).await?
        }
        "misp" => {
            let options = misp::MispOptions {
                include_non_ids: query.include_non_ids,
            };
            blocking(move || misp::import(&body, now, &options).map_err(|error| error.to_string()))
                .await?
        }
        "csv" => {
            let options = csv_options(&query)?;
            blocking(move || csv::import(&body, now, &options).map_err(|error| error.to_string()))
                .await?
        }
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no importer for {other:?}: use stix, misp or csv"),
            ));
        }
    }
    .map_err(|error| unprocessable(format!("{format} file: {error}")))?;
    let report = std::mem::take(&mut import.report);
    if query.dry_run {
        let mut held_back = Vec::new();
        let mut index = 0;
        for (_, items) in import.into_by_tlp(default_tlp) {
            let asked = items.len();
            let lists = state.client.warninglists();
            held_back.extend(hold_back(lists, items, query.ignore_warninglists, index).1);
            index += asked;
        }
        let answer = Imported {
            report,
            published: Vec::new(),
            not_published: Vec::new(),
            held_back,
            dry_run: true,
        };
        return Ok((StatusCode::OK, Json(answer)));
    }
    let outcome = publish_import(&state, import, default_tlp, query.ignore_warninglists).await;
    let answer = Imported {
        report,
        published: outcome.published,
        not_published: outcome.not_published,
        held_back: outcome.held_back,
        dry_run: false,
    };
    // Something the file held could not go out at all: say so in the status too.
    let status = if answer.published.is_empty() && !answer.not_published.is_empty() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((status, Json(answer)))
}
