//! A TAXII 2.1 server over the node's store, so TAXII clients (OpenCTI, MISP's TAXII
//! connector, `taxii2-client`) read the federation's data and publish into it.
//!
//! One API root, `/taxii2/root/`, holds two collections: `shared`, everything this node
//! holds in the clear (read-only), and `own`, this organisation's publications (read and
//! write: objects POSTed there are imported as STIX and published to the mesh). To a read
//! token both are read-only: `can_write` says so, and its POST is refused 403.
//!
//! Objects are made on the fly from stored entries by the STIX exporter, so every node
//! serves the same ids for the same entry, except the STIX ids its own organisation's
//! indicators kept, which only that organisation's nodes serve as they are (see
//! `formats::stix`). An object is an (id, publishing organisation): should two
//! organisations' objects carry one id, each keeps its own versions, and neither hides the
//! other in `match[version]` or a listing. A collection lists first the context objects
//! (an identity per member organisation and the TLP 2.0 marking definitions), then the
//! objects of each entry in the order this node accepted them. A page cursor names a row
//! of the store's added-time index and a position among that entry's objects, so paging
//! costs the page, never the collection.
//!
//! Status resources of POSTs are kept in memory, the most recent [`MAX_STATUSES`]: a
//! publish completes before the answer, so a status only reports what already happened.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::{Value as Json, json};
use threatmesh_protocol::bundle::Tlp;
use threatmesh_protocol::{Body, Entry, Hash, PublicKey, SignedEntry, Timestamp};

mod index;

use super::{Access, ApiState, MAX_BODY_BYTES, Route, blocking};
use crate::formats::{Publisher, rfc3339, stix};
use crate::store::{AddedStart, Store, StoreError};

/// The TAXII 2.1 media type, of every answer and of POSTed envelopes.
pub const TAXII_MEDIA_TYPE: &str = "application/taxii+json;version=2.1";
/// The media type of the objects in a collection.
pub const STIX_MEDIA_TYPE: &str = "application/stix+json;version=2.1";
/// Where discovery lives.
pub const DISCOVERY_PATH: &str = "/taxii2/";
/// The API root.
pub const ROOT_PATH: &str = "/taxii2/root/";
/// Objects per page when the client names no `limit`.
pub const DEFAULT_PAGE: usize = 1000;
/// Most objects per page, whatever the client asks.
pub const MAX_PAGE: usize = 10_000;
/// Status resources kept for clients to read back.
pub const MAX_STATUSES: usize = 1024;
/// Entries read from the store at a time while filling a page. One: an entry can hold
/// 10,000 items, so reading (and decoding) ahead costs more than the seek it saves.
const ROWS_PER_READ: usize = 1;
/// Most entries one page of a listing reads, however few of their objects match: a page
/// that reaches it comes back short (even empty) with `more` and `next`.
pub const MAX_ROWS_PER_PAGE: usize = 256;

/// The routes, under [`DISCOVERY_PATH`]. Authentication is the API's (bearer or basic).
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route(DISCOVERY_PATH, get(discovery))
        .route(ROOT_PATH, get(api_root))
        .route("/taxii2/root/status/{status}/", get(status))
        .route("/taxii2/root/collections/", get(collections))
        .route("/taxii2/root/collections/{collection}/", get(collection))
        .route(
            "/taxii2/root/collections/{collection}/objects/",
            get(objects).post(add_objects),
        )
        .route(
            "/taxii2/root/collections/{collection}/objects/{object}/",
            get(object),
        )
        .route(
            "/taxii2/root/collections/{collection}/objects/{object}/versions/",
            get(versions),
        )
        .route(
            "/taxii2/root/collections/{collection}/manifest/",
            get(manifest),
        )
        .layer(axum::middleware::from_fn(negotiate))
}

/// The TAXII routes, as the OpenAPI document and [`super::ROUTES`] name them, and
/// whether they write (see [`super::ROUTES`]).
pub const ROUTES: [Route; 10] = [
    Route::read("GET /taxii2/"),
    Route::read("GET /taxii2/root/"),
    Route::read("GET /taxii2/root/status/{status}/"),
    Route::read("GET /taxii2/root/collections/"),
    Route::read("GET /taxii2/root/collections/{collection}/"),
    Route::read("GET /taxii2/root/collections/{collection}/objects/"),
    Route::write("POST /taxii2/root/collections/{collection}/objects/"),
    Route::read("GET /taxii2/root/collections/{collection}/objects/{object}/"),
    Route::read("GET /taxii2/root/collections/{collection}/objects/{object}/versions/"),
    Route::read("GET /taxii2/root/collections/{collection}/manifest/"),
];

/// A TAXII error message resource with its HTTP status.
#[derive(Debug)]
pub(super) struct TaxiiError {
    status: StatusCode,
    title: &'static str,
    description: String,
}

impl TaxiiError {
    pub(super) fn new(
        status: StatusCode,
        title: &'static str,
        description: impl Into<String>,
    ) -> TaxiiError {
        TaxiiError {
            status,
            title,
            description: description.into(),
        }
    }

    fn not_found(what: impl Into<String>) -> TaxiiError {
        TaxiiError::new(StatusCode::NOT_FOUND, "Not found", what)
    }

    fn bad_request(what: impl Into<String>) -> TaxiiError {
        TaxiiError::new(StatusCode::BAD_REQUEST, "Bad request", what)
    }
}

impl IntoResponse for TaxiiError {
    fn into_response(self) -> Response {
        let body = json!({
            "title": self.title,
            "description": self.description,
            "http_status": self.status.as_u16().to_string(),
        });
        let mut response = taxii_json(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            let headers = response.headers_mut();
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"threatmesh\""),
            );
            headers.append(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<StoreError> for TaxiiError {
    fn from(error: StoreError) -> TaxiiError {
        let status = super::store_status(&error);
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(%error, "store failed while serving TAXII");
        }
        TaxiiError::new(status, "Storage failure", error.to_string())
    }
}

impl From<super::ApiError> for TaxiiError {
    fn from(error: super::ApiError) -> TaxiiError {
        TaxiiError::new(error.status, "Request failed", error.message)
    }
}

fn taxii_json(status: StatusCode, body: &Json) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(TAXII_MEDIA_TYPE),
        )],
        body.to_string(),
    )
        .into_response()
}

/// Whether a media type (with its parameters) is TAXII 2.1 JSON. A missing version
/// parameter means the newest, 2.1.
fn is_taxii(media_type: &str) -> bool {
    let mut parts = media_type.split(';').map(str::trim);
    let essence = parts.next().unwrap_or_default();
    if !essence.eq_ignore_ascii_case("application/taxii+json") {
        return false;
    }
    parts.all(|parameter| match parameter.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("version") => {
            value.trim().trim_matches('"') == "2.1"
        }
        _ => true,
    })
}

/// Whether an `Accept` header lets the client take TAXII 2.1 JSON.
fn accepts_taxii(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let range = range.trim();
        let essence = range.split(';').next().unwrap_or_default().trim();
        essence == "*/*" || essence.eq_ignore_ascii_case("application/*") || is_taxii(range)
    })
}

/// Refuses requests whose `Accept` (406) or, for POSTs, `Content-Type` (415) is not TAXII
/// 2.1, as the specification requires.
async fn negotiate(headers: HeaderMap, request: Request, next: Next) -> Response {
    if let Some(accept) = headers.get(header::ACCEPT) {
        let accept = accept.to_str().unwrap_or_default();
        if !accepts_taxii(accept) {
            return TaxiiError::new(
                StatusCode::NOT_ACCEPTABLE,
                "Not acceptable",
                format!("this server answers {TAXII_MEDIA_TYPE}, not {accept:?}"),
            )
            .into_response();
        }
    }
    if request.method() == axum::http::Method::POST {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        if !is_taxii(content_type) {
            return TaxiiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported media type",
                format!("POST a TAXII envelope as {TAXII_MEDIA_TYPE}, not {content_type:?}"),
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// The collections of the API root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Collection {
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

    fn find(id: &str, federation: &Hash) -> Result<Collection, TaxiiError> {
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
fn organisation(state: &ApiState) -> String {
    let charter = state.client.charter();
    charter
        .charter()
        .node(&state.client.node_key())
        .map_or_else(
            || "this organisation".to_owned(),
            |(member, _)| member.name.clone(),
        )
}

async fn discovery(State(state): State<ApiState>) -> Response {
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

async fn api_root(State(state): State<ApiState>) -> Response {
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
fn access_of(access: Option<Extension<Access>>) -> Access {
    access.map_or(Access::Read, |Extension(access)| access)
}

async fn collections(State(state): State<ApiState>, access: Option<Extension<Access>>) -> Response {
    let federation = state.client.charter().federation();
    let organisation = organisation(&state);
    let access = access_of(access);
    let all: Vec<Json> = Collection::ALL
        .into_iter()
        .map(|collection| collection.resource(&federation, &organisation, access))
        .collect();
    taxii_json(StatusCode::OK, &json!({ "collections": all }))
}

async fn collection(
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

/// Which versions of an object a request wants: TAXII ORs the values of
/// `match[version]` (`first,last` is both ends).
#[derive(Debug, Clone, PartialEq, Eq)]
struct VersionFilter {
    /// Every version.
    all: bool,
    /// The oldest.
    first: bool,
    /// The newest (the default).
    last: bool,
    /// These `modified` times.
    at: Vec<Timestamp>,
}

/// The filters of a GET on objects, manifest, an object or its versions.
#[derive(Debug, Clone)]
struct Filters {
    added_after: Option<Timestamp>,
    limit: usize,
    next: Option<Cursor>,
    ids: Option<Vec<String>>,
    types: Option<Vec<String>>,
    versions: VersionFilter,
    /// False when `match[spec_version]` names no version this server has (2.1).
    spec_version_ok: bool,
}

impl Filters {
    fn parse(query: Option<&str>) -> Result<Filters, TaxiiError> {
        let mut filters = Filters {
            added_after: None,
            limit: DEFAULT_PAGE,
            next: None,
            ids: None,
            types: None,
            versions: VersionFilter::LAST,
            spec_version_ok: true,
        };
        let list = |value: &str| -> Vec<String> {
            value
                .split(',')
                .map(str::trim)
                .filter(|part| !part.is_empty())
                .map(str::to_owned)
                .collect()
        };
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match &*name {
                "added_after" => {
                    filters.added_after = Some(rfc3339::parse(&value).map_err(|error| {
                        TaxiiError::bad_request(format!("added_after: {error}"))
                    })?);
                }
                "limit" => {
                    let limit: usize = value.parse().map_err(|_| {
                        TaxiiError::bad_request(format!(
                            "limit: {value:?} is not a positive integer"
                        ))
                    })?;
                    if limit == 0 {
                        return Err(TaxiiError::bad_request("limit: must be at least 1"));
                    }
                    filters.limit = limit.min(MAX_PAGE);
                }
                "next" => filters.next = Some(Cursor::parse(&value)?),
                "match[id]" => filters.ids = Some(list(&value)),
                "match[type]" => filters.types = Some(list(&value)),
                "match[version]" => filters.versions = VersionFilter::parse(&value)?,
                "match[spec_version]" => {
                    filters.spec_version_ok = list(&value).iter().any(|version| version == "2.1");
                }
                // Other parameters (and filters this server does not offer) are ignored,
                // as TAXII lets servers do.
                _ => {}
            }
        }
        Ok(filters)
    }

    /// Whether an object of `kind` with `id` passes the id and type filters.
    fn admits(&self, kind: &str, id: &str) -> bool {
        self.spec_version_ok
            && self
                .types
                .as_ref()
                .is_none_or(|types| types.iter().any(|wanted| wanted == kind))
            && self
                .ids
                .as_ref()
                .is_none_or(|ids| ids.iter().any(|wanted| wanted == id))
    }
}

impl VersionFilter {
    /// The default: the newest version only.
    const LAST: VersionFilter = VersionFilter {
        all: false,
        first: false,
        last: true,
        at: Vec::new(),
    };
    /// Every version.
    const ALL: VersionFilter = VersionFilter {
        all: true,
        first: false,
        last: false,
        at: Vec::new(),
    };

    /// Whether the version `modified`, among versions from `first` to `last`, is wanted.
    fn wants(&self, modified: Timestamp, first: Timestamp, last: Timestamp) -> bool {
        self.all
            || (self.first && modified == first)
            || (self.last && modified == last)
            || self.at.contains(&modified)
    }

    fn parse(value: &str) -> Result<VersionFilter, TaxiiError> {
        let mut filter = VersionFilter {
            all: false,
            first: false,
            last: false,
            at: Vec::new(),
        };
        for part in value.split(',').map(str::trim) {
            match part {
                "last" => filter.last = true,
                "first" => filter.first = true,
                "all" => filter.all = true,
                time => filter.at.push(rfc3339::parse(time).map_err(|error| {
                    TaxiiError::bad_request(format!(
                        "match[version]: expected last, first, all or timestamps: {error}"
                    ))
                })?),
            }
        }
        Ok(filter)
    }
}

/// Where a page starts: the context objects (identities and markings), or a row of the
/// store's added-time index and how many of that entry's objects were already served.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cursor {
    /// The `n`th context object.
    Context(usize),
    /// Object `skip` of the entry at index row `key`.
    Entry { key: Vec<u8>, skip: usize },
    /// The `n`th object of a list found by id (`match[id]`, one object's versions).
    Offset(usize),
}

impl Cursor {
    fn text(&self) -> String {
        match self {
            Cursor::Context(n) => format!("c{n}"),
            Cursor::Offset(n) => format!("o{n}"),
            Cursor::Entry { key, skip } => {
                format!("e{}.{skip}", threatmesh_protocol::crypto::hex_encode(key))
            }
        }
    }

    fn parse(text: &str) -> Result<Cursor, TaxiiError> {
        let bad =
            || TaxiiError::bad_request(format!("next: {text:?} is not a cursor of this server"));
        if let Some(n) = text.strip_prefix('c') {
            return n.parse().map(Cursor::Context).map_err(|_| bad());
        }
        if let Some(n) = text.strip_prefix('o') {
            return n.parse().map(Cursor::Offset).map_err(|_| bad());
        }
        let (key, skip) = text
            .strip_prefix('e')
            .and_then(|rest| rest.split_once('.'))
            .ok_or_else(bad)?;
        let key = threatmesh_protocol::crypto::hex_decode::<17>(key).map_err(|_| bad())?;
        Ok(Cursor::Entry {
            key: key.to_vec(),
            skip: skip.parse().map_err(|_| bad())?,
        })
    }
}

/// One object of a collection, with what the manifest says of it.
#[derive(Debug, Clone)]
struct Listed {
    object: Json,
    added: Timestamp,
    /// The version, read from the object's `modified` (or `created`).
    modified: Timestamp,
    /// The entry item the object comes from (0 for context objects).
    item: u32,
    /// The organisation that published the entry it comes from (`None` for context
    /// objects): versions are told apart by it as well as by id.
    org: Option<PublicKey>,
}

impl Listed {
    fn new(object: Json, added: Timestamp, item: u32) -> Listed {
        let modified = object["modified"]
            .as_str()
            .or_else(|| object["created"].as_str())
            .and_then(|text| rfc3339::parse(text).ok())
            .unwrap_or_default();
        Listed {
            object,
            added,
            modified,
            item,
            org: None,
        }
    }

    /// The same object, published by `org`.
    fn by(self, org: PublicKey) -> Listed {
        Listed {
            org: Some(org),
            ..self
        }
    }

    fn id(&self) -> &str {
        self.object["id"].as_str().unwrap_or_default()
    }

    fn kind(&self) -> &str {
        self.object["type"].as_str().unwrap_or_default()
    }

    /// The object's version: its `modified`, or `created` for objects without one.
    fn version(&self) -> &str {
        self.object["modified"]
            .as_str()
            .or_else(|| self.object["created"].as_str())
            .unwrap_or_default()
    }

    fn manifest_record(&self) -> Json {
        json!({
            "id": self.id(),
            "date_added": rfc3339::format(self.added),
            "version": self.version(),
            "media_type": STIX_MEDIA_TYPE,
        })
    }
}

/// A page of a collection and where the next starts.
#[derive(Debug)]
struct Page {
    objects: Vec<Listed>,
    next: Option<Cursor>,
}

/// What the collections read, gathered once per request.
struct View {
    collection: Collection,
    charter: Arc<threatmesh_protocol::SignedCharter>,
    own_org: Option<PublicKey>,
    store: Store,
    index: index::ObjectIndex,
    /// Indicators on these lists carry their names (`x_threatmesh_warninglists`).
    warninglists: Arc<crate::warninglists::Warninglists>,
}

impl View {
    fn new(state: &ApiState, collection: Collection) -> View {
        let charter = state.client.charter();
        let own_org = charter
            .charter()
            .node(&state.client.node_key())
            .map(|(member, _)| member.org);
        View {
            collection,
            charter,
            own_org,
            store: state.store.clone(),
            index: index::ObjectIndex::new(
                &state.store,
                own_org,
                Arc::clone(&state.taxii.catching),
            ),
            warninglists: Arc::clone(state.client.warninglists()),
        }
    }

    /// The organisation behind an entry: the one the store recorded when it accepted the
    /// feed, named as the charter names it (a member since removed keeps its key).
    fn publisher(&self, author: &PublicKey) -> Publisher {
        let org = self.store.organisation_of(author);
        let member = org.and_then(|org| self.charter.charter().member(&org));
        match (org, member) {
            (_, Some(member)) => Publisher {
                org: member.org,
                name: member.name.clone(),
                country: member.country.clone(),
            },
            (Some(org), None) => Publisher {
                org,
                name: format!("organisation {org}"),
                country: "XX".to_owned(),
            },
            (None, None) => Publisher::unknown(author),
        }
    }

    /// Whether the collection holds an entry of `author`.
    fn holds(&self, author: &PublicKey) -> bool {
        match self.collection {
            Collection::Shared => true,
            Collection::Own => {
                self.own_org.is_some() && self.store.organisation_of(author) == self.own_org
            }
        }
    }

    /// The context objects: an identity per member organisation (for `own`: this
    /// organisation's only) and the TLP 2.0 marking definitions, dated by the issue of
    /// the charter in force.
    fn context(&self) -> Vec<Listed> {
        let added = self.charter.charter().issued;
        let mut objects = Vec::new();
        for member in &self.charter.charter().members {
            if self.collection == Collection::Own && Some(member.org) != self.own_org {
                continue;
            }
            let publisher = Publisher {
                org: member.org,
                name: member.name.clone(),
                country: member.country.clone(),
            };
            objects.push(Listed::new(stix::identity(&publisher), added, 0));
        }
        for tlp in [
            Tlp::Clear,
            Tlp::Green,
            Tlp::Amber,
            Tlp::AmberStrict,
            Tlp::Red,
        ] {
            objects.push(Listed::new(stix::tlp_marking(tlp), added, 0));
        }
        objects
    }

    /// The entry as exports read it: a sealed one as the bundle this node opened, or
    /// `None` when this organisation is not among its recipients (nothing of it is shown).
    fn readable<'e>(&self, entry: &'e SignedEntry) -> Result<Option<Cow<'e, Entry>>, StoreError> {
        let opened = match &entry.entry().body {
            Body::Bundle(_) => None,
            Body::Sealed(_) => self.store.opened(&entry.id())?,
        };
        Ok(crate::formats::readable_entry(entry.entry(), opened))
    }

    /// The objects of one entry: everything its export holds but identities and marking
    /// definitions, which the collection lists once among its context objects.
    fn entry_objects(
        &self,
        entry: &SignedEntry,
        added: Timestamp,
    ) -> Result<Vec<Listed>, StoreError> {
        self.exported(entry, added, None)
    }

    /// The objects of item `item` of an entry alone (with the malware and campaign it
    /// names), for looking one object up without exporting the whole entry.
    fn item_objects(
        &self,
        entry: &SignedEntry,
        added: Timestamp,
        item: u32,
    ) -> Result<Vec<Listed>, StoreError> {
        self.exported(entry, added, Some(item))
    }

    /// The objects of `entry` (of its item `only`, if given), each with the item it comes
    /// from; nothing for a sealed entry this node could not open.
    fn exported(
        &self,
        entry: &SignedEntry,
        added: Timestamp,
        only: Option<u32>,
    ) -> Result<Vec<Listed>, StoreError> {
        let Some(readable) = self.readable(entry)? else {
            return Ok(Vec::new());
        };
        let publisher = self.publisher(&entry.entry().author);
        let id = entry.id();
        let org = publisher.org;
        let kept = stix::KeptIds::of_node(self.own_org);
        let Some(export) = stix::EntryExport::new(&readable, &id, &publisher, kept) else {
            return Ok(Vec::new());
        };
        let export = export.marked(&self.warninglists);
        let items = match only {
            Some(item) => {
                let index = usize::try_from(item).unwrap_or(usize::MAX);
                index..index.saturating_add(1)
            }
            None => 0..export.items(),
        };
        let mut named = std::collections::HashSet::new();
        let mut listed = Vec::with_capacity(items.len());
        let mut objects = Vec::new();
        for index in items {
            export.item(index, &mut named, &mut objects);
            let item = u32::try_from(index).unwrap_or(u32::MAX);
            listed.extend(
                objects
                    .drain(..)
                    .map(|object| Listed::new(object, added, item).by(org)),
            );
        }
        Ok(listed)
    }

    /// Brings the object index up to the store and returns the row it reaches: pages
    /// stop there, so they never list an entry whose versions the index does not know.
    /// While the store refuses writes (a full disk), pages are served up to where the
    /// index already reaches: newer entries appear once it can grow again.
    fn index_new_entries(&self) -> Result<Option<Vec<u8>>, StoreError> {
        match self.index_some_entries(usize::MAX) {
            Err(StoreError::DiskFull { .. } | StoreError::Poisoned) => self.index.reached(),
            other => other,
        }
    }

    /// Indexes about `budget` more entries; the row the index reaches. A store that
    /// refuses writes is an error here: the background indexer waits for its next turn.
    fn index_some_entries(&self, budget: usize) -> Result<Option<Vec<u8>>, StoreError> {
        self.index.catch_up(budget, |row| {
            Ok(self
                .entry_objects(&row.entry, row.added)?
                .into_iter()
                .filter_map(|listed| {
                    Some((
                        listed.id().to_owned(),
                        listed.org?,
                        listed.modified,
                        listed.item,
                    ))
                })
                .collect())
        })
    }

    /// Whether `listed`, found in the entry at index row `row`, is where its version first
    /// appears, so it is listed once however many entries repeat it.
    fn first_here(&self, listed: &Listed, row: &[u8]) -> Result<bool, StoreError> {
        let Some(org) = &listed.org else {
            return Ok(true);
        };
        Ok(self
            .index
            .first_occurrence(listed.id(), org, listed.modified)?
            .is_none_or(|first| first.row == row && first.item == listed.item))
    }

    /// Whether `listed` is a version the filter asks for.
    fn wanted_version(&self, listed: &Listed, filter: &VersionFilter) -> Result<bool, StoreError> {
        if filter.all || filter.at.contains(&listed.modified) {
            return Ok(true);
        }
        let (mut first, mut last) = (listed.modified, listed.modified);
        // Context objects have one version; an entry's object is compared with the
        // versions its own publisher holds under that id only.
        let Some(org) = &listed.org else {
            return Ok(filter.wants(listed.modified, first, last));
        };
        if filter.first {
            first = self.index.first_version(listed.id(), org)?.unwrap_or(first);
        }
        if filter.last {
            last = self.index.last_version(listed.id(), org)?.unwrap_or(last);
        }
        Ok(filter.wants(listed.modified, first, last))
    }

    /// Fills one page of the collection: context objects first, then entries in the
    /// order this node accepted them.
    fn page(&self, filters: &Filters) -> Result<Page, StoreError> {
        if !filters.spec_version_ok {
            return Ok(Page {
                objects: Vec::new(),
                next: None,
            });
        }
        if let Some(ids) = &filters.ids {
            return self.page_of_ids(ids, filters);
        }
        let indexed = self.index_new_entries()?;
        let mut objects = Vec::new();
        let mut cursor = filters.next.clone().unwrap_or(Cursor::Context(0));
        if let Cursor::Context(start) = cursor {
            for (index, listed) in self.context().into_iter().enumerate().skip(start) {
                if filters
                    .added_after
                    .is_some_and(|after| listed.added <= after)
                    || !filters.admits(listed.kind(), listed.id())
                {
                    continue;
                }
                if objects.len() == filters.limit {
                    return Ok(Page {
                        objects,
                        next: Some(Cursor::Context(index)),
                    });
                }
                objects.push(listed);
            }
            cursor = Cursor::Entry {
                key: Vec::new(),
                skip: 0,
            };
        }
        let Cursor::Entry { key, mut skip } = cursor else {
            return Ok(Page {
                objects,
                next: None,
            });
        };
        let mut start_key = key;
        let mut inclusive = !start_key.is_empty();
        // A page reads at most this many entries, however few match, so no request scans
        // the whole store; a short page says where to go on.
        let mut budget = MAX_ROWS_PER_PAGE;
        loop {
            if budget == 0 && !start_key.is_empty() {
                return Ok(Page {
                    objects,
                    next: Some(Cursor::Entry {
                        key: start_key,
                        skip: usize::MAX,
                    }),
                });
            }
            budget = budget.saturating_sub(1);
            let start = if start_key.is_empty() {
                filters
                    .added_after
                    .map_or(AddedStart::First, AddedStart::After)
            } else if inclusive {
                AddedStart::At(&start_key)
            } else {
                AddedStart::Following(&start_key)
            };
            let rows = self.store.added_rows(start, ROWS_PER_READ)?;
            // Rows past what the index reaches wait for the next request.
            let rows: Vec<_> = rows
                .into_iter()
                .take_while(|row| Some(&row.key) <= indexed.as_ref())
                .collect();
            let exhausted = rows.len() < ROWS_PER_READ;
            for row in rows {
                if self.holds(&row.entry.entry().author) {
                    for (index, listed) in self
                        .entry_objects(&row.entry, row.added)?
                        .into_iter()
                        .enumerate()
                        .skip(skip)
                    {
                        if !filters.admits(listed.kind(), listed.id())
                            || !self.wanted_version(&listed, &filters.versions)?
                            || !self.first_here(&listed, &row.key)?
                        {
                            continue;
                        }
                        if objects.len() == filters.limit {
                            return Ok(Page {
                                objects,
                                next: Some(Cursor::Entry {
                                    key: row.key,
                                    skip: index,
                                }),
                            });
                        }
                        objects.push(listed);
                    }
                }
                skip = 0;
                start_key = row.key;
                inclusive = false;
            }
            if exhausted {
                return Ok(Page {
                    objects,
                    next: None,
                });
            }
        }
    }

    /// A page of the objects named by `match[id]`, found through the index instead of a
    /// scan. The cursor counts objects already served.
    fn page_of_ids(&self, ids: &[String], filters: &Filters) -> Result<Page, StoreError> {
        let skip = match filters.next {
            Some(Cursor::Offset(served)) => served,
            _ => 0,
        };
        let mut objects = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for id in ids.iter().filter(|id| seen.insert(id.as_str())) {
            let mut found = self.versions(id)?;
            found.retain(|listed| {
                filters.admits(listed.kind(), listed.id())
                    && filters.added_after.is_none_or(|after| listed.added > after)
            });
            objects.extend(choose(found, &filters.versions));
        }
        let total = objects.len();
        let objects: Vec<Listed> = objects.into_iter().skip(skip).take(filters.limit).collect();
        let served = skip + objects.len();
        Ok(Page {
            objects,
            next: (served < total).then_some(Cursor::Offset(served)),
        })
    }

    /// Every version this collection holds of object `id`, by publishing organisation,
    /// then oldest first: one prefix scan of the index and one entry read per version,
    /// whatever the collection's size.
    fn versions(&self, id: &str) -> Result<Vec<Listed>, StoreError> {
        // STIX ids never hold NUL, which separates the id in index keys.
        if id.contains('\0') {
            return Ok(Vec::new());
        }
        if let Some(listed) = self.context().into_iter().find(|listed| listed.id() == id) {
            return Ok(vec![listed]);
        }
        self.index_new_entries()?;
        let mut found = Vec::new();
        let mut versions = self.index.versions(id)?;
        // An object many entries repeat (a malware) is one version held many times: read
        // it where it first appears only.
        versions.dedup_by_key(|version| (version.org, version.modified));
        for version in versions {
            let Some(row) = self
                .store
                .added_rows(AddedStart::At(&version.row), 1)?
                .into_iter()
                .next()
                .filter(|row| row.key == version.row)
            else {
                return Err(StoreError::corrupt(
                    &version.row,
                    "TAXII index names a missing entry",
                ));
            };
            if !self.holds(&row.entry.entry().author) {
                continue;
            }
            found.extend(
                self.item_objects(&row.entry, row.added, version.item)?
                    .into_iter()
                    .filter(|listed| listed.id() == id && listed.org == Some(version.org)),
            );
        }
        Ok(found)
    }
}

/// When the first and last objects of a page were added, for TAXII's
/// `X-TAXII-Date-Added-First` and `-Last` headers.
fn added_range(listed: &[Listed]) -> Option<(Timestamp, Timestamp)> {
    Some((listed.first()?.added, listed.last()?.added))
}

/// An envelope, manifest or versions answer: `more` and `next` when the page is not the
/// last; an empty object when there is nothing.
fn paged(
    field: &str,
    items: Vec<Json>,
    next: Option<&Cursor>,
    added: Option<(Timestamp, Timestamp)>,
) -> Response {
    let mut body = serde_json::Map::new();
    // A page can come back empty and still not be the last (a scan stopped at its row
    // budget): then it says `more` and where to go on.
    if !items.is_empty() || next.is_some() {
        body.insert("more".into(), Json::Bool(next.is_some()));
        if let Some(next) = next {
            body.insert("next".into(), Json::String(next.text()));
        }
        if !items.is_empty() {
            body.insert(field.into(), Json::Array(items));
        }
    }
    let mut response = taxii_json(StatusCode::OK, &Json::Object(body));
    if let Some((first, last)) = added {
        let headers = response.headers_mut();
        for (name, time) in [
            ("x-taxii-date-added-first", first),
            ("x-taxii-date-added-last", last),
        ] {
            if let Ok(value) = HeaderValue::from_str(&rfc3339::format(time)) {
                headers.insert(name, value);
            }
        }
    }
    response
}

async fn objects(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, TaxiiError> {
    let page = page_of(&state, &id, query.as_deref()).await?;
    let added = added_range(&page.objects);
    let objects: Vec<Json> = page
        .objects
        .into_iter()
        .map(|listed| listed.object)
        .collect();
    Ok(paged("objects", objects, page.next.as_ref(), added))
}

async fn manifest(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, TaxiiError> {
    let page = page_of(&state, &id, query.as_deref()).await?;
    let records: Vec<Json> = page.objects.iter().map(Listed::manifest_record).collect();
    Ok(paged(
        "objects",
        records,
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

/// The versions `filter` asks for among `found`, the versions of one id: sorted by
/// publishing organisation, then oldest first, without duplicates. First and last are
/// each organisation's own: two organisations' objects under one id are two objects, and
/// one never hides or replaces the other.
fn choose(mut found: Vec<Listed>, filter: &VersionFilter) -> Vec<Listed> {
    found.sort_by_key(|listed| (listed.org, listed.modified));
    found.dedup_by_key(|listed| (listed.org, listed.modified));
    let mut chosen = Vec::with_capacity(found.len());
    for object in found.chunk_by(|one, other| one.org == other.org) {
        let (Some(first), Some(last)) = (object.first(), object.last()) else {
            continue;
        };
        let (first, last) = (first.modified, last.modified);
        chosen.extend(
            object
                .iter()
                .filter(|listed| filter.wants(listed.modified, first, last))
                .cloned(),
        );
    }
    chosen
}

async fn object(
    State(state): State<ApiState>,
    Path((collection, object)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, TaxiiError> {
    let filters = Filters::parse(query.as_deref())?;
    let found = versions_of(&state, &collection, &object, &filters).await?;
    let (shown, next) = offset_page(found, &filters);
    let added = added_range(&shown);
    let objects: Vec<Json> = shown.into_iter().map(|listed| listed.object).collect();
    Ok(paged("objects", objects, next.as_ref(), added))
}

async fn versions(
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
    let versions: Vec<Json> = shown
        .iter()
        .map(|listed| Json::String(rfc3339::format(listed.modified)))
        .collect();
    Ok(paged(
        "versions",
        versions,
        next.as_ref(),
        added_range(&shown),
    ))
}

/// The page of `found` that `filters` ask for (`limit`, and `next` as an offset), with
/// the cursor of the next page when more remain.
fn offset_page(found: Vec<Listed>, filters: &Filters) -> (Vec<Listed>, Option<Cursor>) {
    let skip = match filters.next {
        Some(Cursor::Offset(served)) => served,
        _ => 0,
    };
    let total = found.len();
    let shown: Vec<Listed> = found.into_iter().skip(skip).take(filters.limit).collect();
    let served = skip + shown.len();
    (shown, (served < total).then_some(Cursor::Offset(served)))
}

/// The sled tree the object index of a node serving organisation `own` lives in.
#[cfg(test)]
pub(super) fn index_tree(own: Option<PublicKey>) -> String {
    index::tree_name(own)
}

/// What the TAXII handlers keep between requests.
/// Entries the background indexer indexes per turn: short turns, so a request that needs
/// the index, or a shutdown, waits at most a fraction of a second behind it.
const BACKGROUND_ENTRIES_PER_TURN: usize = 256;
/// How often the background indexer looks for entries accepted since its last turn.
const BACKGROUND_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Keeps the object index up with the store, so that the first TAXII read after a start
/// on a large store, or after a big import, does not wait while every entry accepted
/// since the last read is indexed (90,000 objects took about 1.2 s; ten million would
/// take minutes). Requests still index whatever is left before they answer, so nothing
/// is listed out of order. Runs until the runtime stops.
pub(super) async fn keep_indexed(state: ApiState) {
    let mut every = tokio::time::interval(BACKGROUND_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported = false;
    loop {
        every.tick().await;
        let started = std::time::Instant::now();
        let mut turns = 0_u64;
        // Turn after turn until it reaches the newest entry, yielding between turns.
        loop {
            let view = View::new(&state, Collection::Shared);
            let turn = tokio::task::spawn_blocking(move || {
                let reached = view.index_some_entries(BACKGROUND_ENTRIES_PER_TURN)?;
                Ok::<_, StoreError>(reached >= view.store.last_added_key()?)
            })
            .await;
            match turn {
                Ok(Ok(true)) => {
                    reported = false;
                    break;
                }
                Ok(Ok(false)) => turns += 1,
                Ok(Err(error)) => {
                    if !reported {
                        tracing::warn!(%error, "indexing TAXII objects failed; trying again later");
                        reported = true;
                    }
                    break;
                }
                Err(error) => {
                    tracing::error!(%error, "the TAXII indexer stopped");
                    return;
                }
            }
            if turns.is_multiple_of(40) {
                tracing::info!(
                    entries = turns.saturating_mul(BACKGROUND_ENTRIES_PER_TURN as u64),
                    "indexing TAXII objects of entries accepted earlier"
                );
            }
        }
        if turns > 0 {
            tracing::info!(
                seconds = started.elapsed().as_secs_f64(),
                "TAXII object index caught up with the store"
            );
        }
    }
}

#[derive(Debug)]
pub(super) struct Shared {
    statuses: Statuses,
    /// What every request's view of the object index shares.
    catching: Arc<index::Catching>,
}

impl Shared {
    /// The state of a node that answered nothing yet.
    pub(super) fn new() -> Shared {
        Shared {
            statuses: Statuses::default(),
            catching: Arc::new(index::Catching::default()),
        }
    }
}

/// The status resources of recent POSTs, oldest dropped first.
#[derive(Debug, Default)]
struct Statuses {
    inner: Mutex<StatusBook>,
}

#[derive(Debug, Default)]
struct StatusBook {
    by_id: HashMap<String, Json>,
    order: VecDeque<String>,
}

impl Statuses {
    fn insert(&self, id: String, status: Json) {
        let Ok(mut book) = self.inner.lock() else {
            return;
        };
        if book.order.len() == MAX_STATUSES
            && let Some(oldest) = book.order.pop_front()
        {
            book.by_id.remove(&oldest);
        }
        book.order.push_back(id.clone());
        book.by_id.insert(id, status);
    }

    fn get(&self, id: &str) -> Option<Json> {
        self.inner.lock().ok()?.by_id.get(id).cloned()
    }
}

async fn status(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, TaxiiError> {
    let status = state
        .taxii
        .statuses
        .get(&id)
        .ok_or_else(|| TaxiiError::not_found(format!("no status {id:?} (statuses are kept for the last {MAX_STATUSES} requests, until the node restarts)")))?;
    Ok(taxii_json(StatusCode::OK, &status))
}

/// A random (version 4) UUID, for status ids.
fn random_uuid() -> Result<String, TaxiiError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|error| {
        TaxiiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "No randomness",
            error.to_string(),
        )
    })?;
    Ok(uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string())
}

/// Imports a POSTed envelope as STIX and publishes what it holds, one publish per TLP.
/// Answers 202 with a status resource that says, per object, whether it was taken.
async fn add_objects(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, TaxiiError> {
    let federation = state.client.charter().federation();
    let collection = Collection::find(&id, &federation)?;
    if collection != Collection::Own {
        return Err(TaxiiError::new(
            StatusCode::FORBIDDEN,
            "Read-only collection",
            "this collection is read-only; POST to this organisation's own collection",
        ));
    }
    let requested = state.client.now();
    // Parsing and importing up to the body limit is CPU work: off the async threads.
    let (envelope_objects, import) = blocking(move || read_envelope(&body, requested)).await??;
    let mut failures: HashMap<String, String> = import
        .report
        .refused
        .iter()
        .map(|refusal| (refusal.at.clone(), refusal.reason.clone()))
        .collect();
    for (id, kind, _) in &envelope_objects {
        // Types the importer reads as context (identities, malware, relationships, ...)
        // are taken even when one of them was not needed; only types it never uses fail.
        if import.report.unused.contains_key(kind.as_str())
            && !CONTEXT_TYPES.contains(&kind.as_str())
        {
            failures.entry(id.clone()).or_insert_with(|| {
                format!("threatmesh does not use {kind} objects; not published")
            });
        }
    }
    let mut publish_error = None;
    for (tlp, items) in import.into_by_tlp(Tlp::Amber) {
        // Indicators on a warninglist are held back, as on every publish path; TAXII
        // clients have no flag to send, so the object fails with the reason.
        let (items, held) =
            crate::api::warninglists::hold_back_stix(state.client.warninglists(), items);
        failures.extend(held);
        if items.is_empty() {
            continue;
        }
        if let Err(error) = state
            .client
            .publish(tlp, threatmesh_protocol::Distribution::Federation, items)
            .await
        {
            publish_error = Some(format!("publishing the {tlp} objects failed: {error}"));
        }
    }
    let (mut successes, mut failed) = (Vec::new(), Vec::new());
    for (id, _, version) in &envelope_objects {
        let version = if version.is_empty() {
            rfc3339::format(requested)
        } else {
            version.clone()
        };
        let record = |message: Option<&String>| {
            let mut record = json!({ "id": id, "version": version });
            if let Some(message) = message {
                record["message"] = Json::String(message.clone());
            }
            record
        };
        match failures.get(id).or(publish_error.as_ref()) {
            Some(reason) => failed.push(record(Some(reason))),
            None => successes.push(record(None)),
        }
    }
    let status_id = random_uuid()?;
    let status = json!({
        "id": status_id,
        "status": "complete",
        "request_timestamp": rfc3339::format(requested),
        "total_count": envelope_objects.len(),
        "success_count": successes.len(),
        "failure_count": failed.len(),
        "pending_count": 0,
        "successes": successes,
        "failures": failed,
        "pendings": [],
    });
    state.taxii.statuses.insert(status_id, status.clone());
    Ok(taxii_json(StatusCode::ACCEPTED, &status))
}

/// STIX types the importer reads as context of indicators rather than as items.
const CONTEXT_TYPES: [&str; 5] = [
    "identity",
    "malware",
    "campaign",
    "relationship",
    "marking-definition",
];

/// The (id, type, version) of every object of a POSTed envelope, and what the STIX
/// importer made of them.
type EnvelopeRead = (Vec<(String, String, String)>, crate::formats::Import);

fn read_envelope(body: &[u8], requested: Timestamp) -> Result<EnvelopeRead, TaxiiError> {
    let envelope: Json = serde_json::from_slice(body)
        .map_err(|error| TaxiiError::bad_request(format!("the envelope is not JSON: {error}")))?;
    let Some(listed) = envelope.get("objects").and_then(Json::as_array) else {
        return Err(TaxiiError::bad_request(
            "the envelope has no \"objects\" list",
        ));
    };
    // Refused before anything is built per object.
    if listed.len() > stix::MAX_OBJECTS {
        return Err(TaxiiError::bad_request(
            stix::StixError::TooManyObjects(listed.len()).to_string(),
        ));
    }
    let envelope_objects: Vec<(String, String, String)> = listed
        .iter()
        .enumerate()
        .map(|(index, object)| {
            let id = object["id"]
                .as_str()
                .map_or_else(|| format!("objects[{index}]"), str::to_owned);
            let kind = object["type"].as_str().unwrap_or_default().to_owned();
            let version = object["modified"]
                .as_str()
                .or_else(|| object["created"].as_str())
                .unwrap_or_default()
                .to_owned();
            (id, kind, version)
        })
        .collect();
    let import = stix::import_objects(listed, requested)
        .map_err(|error| TaxiiError::bad_request(error.to_string()))?;
    Ok((envelope_objects, import))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        assert!(is_taxii("application/taxii+json;version=2.1"));
        assert!(is_taxii("application/taxii+json; version=2.1"));
        assert!(is_taxii("application/taxii+json"));
        assert!(!is_taxii("application/taxii+json;version=2.0"));
        assert!(!is_taxii("application/json"));
        assert!(accepts_taxii("application/json, */*;q=0.1"));
        assert!(accepts_taxii("application/taxii+json;version=2.1"));
        assert!(!accepts_taxii("application/json"));
        assert!(!accepts_taxii("application/taxii+json;version=2.0"));
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        for cursor in [
            Cursor::Context(3),
            Cursor::Entry {
                key: vec![b'a'; 17],
                skip: 12,
            },
        ] {
            assert_eq!(Cursor::parse(&cursor.text()).ok(), Some(cursor));
        }
        for text in [
            "",
            "x",
            "c",
            "e12.3",
            "eZZ.1",
            &format!("e{}", "61".repeat(17)),
        ] {
            assert!(Cursor::parse(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn filters_are_read_and_bad_ones_refused() {
        let filters = Filters::parse(Some(
            "added_after=2026-01-01T00:00:00Z&limit=50000&match%5Btype%5D=indicator,sighting&match[version]=all",
        ))
        .ok();
        let filters = filters.as_ref();
        assert_eq!(filters.map(|f| f.limit), Some(MAX_PAGE));
        assert_eq!(
            filters.and_then(|f| f.types.clone()),
            Some(vec!["indicator".to_owned(), "sighting".to_owned()])
        );
        assert_eq!(
            filters.map(|f| f.versions.clone()),
            Some(VersionFilter::ALL)
        );
        let both = Filters::parse(Some("match[version]=first,last")).ok();
        let both = both.map(|f| f.versions);
        assert_eq!(
            both.map(|v| (v.first, v.last, v.all)),
            Some((true, true, false))
        );
        for bad in [
            "limit=0",
            "limit=ten",
            "added_after=yesterday",
            "match[version]=newest",
            "next=zzz",
        ] {
            assert!(Filters::parse(Some(bad)).is_err(), "{bad:?} was accepted");
        }
    }
}
