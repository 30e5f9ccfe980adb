//! The GET handlers of a collection's objects and manifest, and of one object and its
//! versions: each parses its filters, reads a page from the [`View`] off the async
//! threads, and wraps it in a paged envelope.

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use serde_json::Value as Json;

use super::TaxiiError;
use super::collections::Collection;
use super::cursor::{added_range, offset_page, paged};
use super::filters::{Filters, VersionFilter, choose};
use super::listed::Listed;
use super::view::{Page, View};
use crate::api::{ApiState, blocking};
use crate::formats::rfc3339;

pub(super) async fn objects(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, TaxiiError> {
    let page = page_of(&state, &id, query.as_deref()).await?;
    let added = added_range(&page.objects);
    let objects: Vec<&str> = page.objects.iter().map(|listed| &*listed.json).collect();
    Ok(paged("objects", &objects, page.next.as_ref(), added))
}

pub(super) async fn manifest(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, TaxiiError> {
    let page = page_of(&state, &id, query.as_deref()).await?;
    let records: Vec<String> = page
        .objects
        .iter()
        .map(|listed| serde_json::to_string(&listed.manifest_record()).unwrap_or_default())
        .collect();
    Ok(paged(
        "objects",
        &records,
        page.next.as_ref(),
        added_range(&page.objects),
    ))
}

async fn page_of(
    state: &ApiState,
    collection: &str,
    query: Option<&str>,
) -> Result<Page, TaxiiError> {
    let federation = state.client.charter().federation();
    let collection = Collection::find(collection, &federation)?;
    let filters = Filters::parse(query)?;
    let view = View::new(state, collection);
    Ok(blocking(move || view.page(&filters)).await??)
}

/// The versions of one object that `filters` ask for, oldest first; 404 when the
/// collection holds none.
async fn versions_of(
    state: &ApiState,
    collection: &str,
    object: &str,
    filters: &Filters,
) -> Result<Vec<Listed>, TaxiiError> {
    let federation = state.client.charter().federation();
    let view = View::new(state, Collection::find(collection, &federation)?);
    let id = object.to_owned();
    let mut found = blocking(move || view.versions(&id)).await??;
    found.retain(|listed| {
        filters.added_after.is_none_or(|after| listed.added > after)
            && filters
                .types
                .as_ref()
                .is_none_or(|types| types.iter().any(|kind| kind == listed.kind()))
            && filters.spec_version_ok
    });
    if found.is_empty() {
        return Err(TaxiiError::not_found(format!(
            "no object {object:?} in this collection"
        )));
    }
    Ok(choose(found, &filters.versions))
}

pub(super) async fn object(
    State(state): State<ApiState>,
    Path((collection, object)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, TaxiiError> {
    let filters = Filters::parse(query.as_deref())?;
    let found = versions_of(&state, &collection, &object, &filters).await?;
    let (shown, next) = offset_page(found, &filters);
    let added = added_range(&shown);
    let objects: Vec<&str> = shown.iter().map(|listed| &*listed.json).collect();
    Ok(paged("objects", &objects, next.as_ref(), added))
}

pub(super) async fn versions(
    State(state): State<ApiState>,
    Path((collection, object)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, TaxiiError> {
    let mut filters = Filters::parse(query.as_deref())?;
    // The versions endpoint lists every version; `match[version]` is not one of its
    // filters.
    filters.versions = VersionFilter::ALL;
    let found = versions_of(&state, &collection, &object, &filters).await?;
    let (shown, next) = offset_page(found, &filters);
    let versions: Vec<String> = shown
        .iter()
        .map(|listed| Json::String(rfc3339::format(listed.modified)).to_string())
        .collect();
    Ok(paged(
        "versions",
        &versions,
        next.as_ref(),
        added_range(&shown),
    ))
}
