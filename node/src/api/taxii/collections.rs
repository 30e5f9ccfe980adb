//! Discovery, the API root and its two collections: `shared` (read-only) and `own`
//! (writable with a write token), with ids fixed per federation.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value as Json, json};
use threatmesh_protocol::Hash;

use super::media::{STIX_MEDIA_TYPE, TAXII_MEDIA_TYPE, taxii_json};
use super::{ROOT_PATH, TaxiiError};
use crate::api::{Access, ApiState, MAX_BODY_BYTES};
use crate::formats::stix;

/// The collections of the API root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Collection {
    /// Everything this node holds in the clear.
    Shared,
    /// This organisation's publications.
    Own,
}

impl Collection {
    const ALL: [Collection; 2] = [Collection::Shared, Collection::Own];

    fn name(self) -> &'static str {
        match self {
            Collection::Shared => "shared",
            Collection::Own => "own",
        }
    }

    /// The collection's id: a UUID fixed per federation, so it stays the same across
    /// restarts and is the same on every node of the organisation.
    fn id(self, federation: &Hash) -> String {
        let name = [
            &b"taxii-collection\0"[..],
            &federation.0,
            self.name().as_bytes(),
        ]
        .concat();
        uuid::Uuid::new_v5(&stix::NAMESPACE, &name).to_string()
    }

    pub(super) fn find(id: &str, federation: &Hash) -> Result<Collection, TaxiiError> {
        Collection::ALL
            .into_iter()
            .find(|collection| collection.id(federation) == id)
            .ok_or_else(|| TaxiiError::not_found(format!("no collection {id:?}")))
    }

    /// The collection resource, as the client presenting a token with `access` sees it:
    /// TAXII's `can_write` says whether *the requester* may write, so a read token sees
    /// none it can.
    fn resource(self, federation: &Hash, organisation: &str, access: Access) -> Json {
        let (title, description) = match self {
            Collection::Shared => (
                "Shared with us".to_owned(),
                format!(
                    "Every indicator, sighting and revocation the federation shared with \
                     {organisation}, as STIX 2.1. Read-only."
                ),
            ),
            Collection::Own => (
                format!("{organisation} publications"),
                format!(
                    "What {organisation} published. POST STIX 2.1 objects here to sign \
                     and publish them to the federation."
                ),
            ),
        };
        json!({
            "id": self.id(federation),
            "title": title,
            "description": description,
            "can_read": true,
            "can_write": self == Collection::Own && access == Access::Write,
            "media_types": [STIX_MEDIA_TYPE],
        })
    }
}

/// This node's organisation name, for titles.
pub(super) fn organisation(state: &ApiState) -> String {
    let charter = state.client.charter();
    charter
        .charter()
        .node(&state.client.node_key())
        .map_or_else(
            || "this organisation".to_owned(),
            |(member, _)| member.name.clone(),
        )
}

pub(super) async fn discovery(State(state): State<ApiState>) -> Response {
    // Relative to the discovery URL: right whatever name, port and scheme (a TLS proxy in
    // front of the node) the client reached it by.
    taxii_json(
        StatusCode::OK,
        &json!({
            "title": format!("threatmesh node of {}", organisation(&state)),
            "description": "TAXII 2.1 access to a threatmesh federation's indicators.",
            "default": ROOT_PATH,
            "api_roots": [ROOT_PATH],
        }),
    )
}

pub(super) async fn api_root(State(state): State<ApiState>) -> Response {
    let charter = state.client.charter();
    taxii_json(
        StatusCode::OK,
        &json!({
            "title": charter.charter().name,
            "description": format!("The federation {}, as seen by {}.", charter.charter().name, organisation(&state)),
            "versions": [TAXII_MEDIA_TYPE],
            "max_content_length": MAX_BODY_BYTES,
        }),
    )
}

/// The access authentication granted the request; read-only should it be missing.
pub(super) fn access_of(access: Option<Extension<Access>>) -> Access {
    access.map_or(Access::Read, |Extension(access)| access)
}

pub(super) async fn collections(
    State(state): State<ApiState>,
    access: Option<Extension<Access>>,
) -> Response {
    let federation = state.client.charter().federation();
    let organisation = organisation(&state);
    let access = access_of(access);
    let all: Vec<Json> = Collection::ALL
        .into_iter()
        .map(|collection| collection.resource(&federation, &organisation, access))
        .collect();
    taxii_json(StatusCode::OK, &json!({ "collections": all }))
}

pub(super) async fn collection(
    State(state): State<ApiState>,
    access: Option<Extension<Access>>,
    Path(id): Path<String>,
) -> Result<Response, TaxiiError> {
    let federation = state.client.charter().federation();
    let collection = Collection::find(&id, &federation)?;
    Ok(taxii_json(
        StatusCode::OK,
        &collection.resource(&federation, &organisation(&state), access_of(access)),
    ))
}
