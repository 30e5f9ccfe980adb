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
//!
//! # Layout
//!
//! - `mod.rs`: the routes ([`ROUTES`]), the limits, and what the handlers keep between
//!   requests.
//! - `media.rs`: content negotiation: the TAXII and STIX media types, and the refusal of
//!   requests that do not speak TAXII 2.1.
//! - `error.rs`: `TaxiiError`, TAXII's error message resource.
//! - `collections.rs`: discovery, the API root and its two collections.
//! - `filters.rs`: the query of a GET (`added_after`, `limit`, `match[...]`) and the
//!   choice of versions.
//! - `cursor.rs`: page cursors (`next`) and the envelope of a page.
//! - `listed.rs`: an object of a page, written as JSON once, and the entry the last page
//!   ended in.
//! - `view.rs`: the read model: a collection's objects made from stored entries, paged in
//!   the order they were accepted, and one object's versions found through the store's
//!   object index.
//! - `read.rs`: the GET handlers of objects, the manifest, an object and its versions.
//! - `indexer.rs`: the background task that keeps the object index up with the store.
//! - `status.rs`: the status resources of recent POSTs.
//! - `import.rs`: POSTed envelopes, imported as STIX and published.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use super::{ApiState, Route};
use crate::store::CatchUpLock;

mod collections;
mod cursor;
mod error;
mod filters;
mod import;
mod indexer;
mod listed;
mod media;
mod read;
mod status;
#[cfg(test)]
mod tests;
mod view;

pub(crate) use error::TaxiiError;
pub(super) use indexer::keep_indexed;
pub use media::{STIX_MEDIA_TYPE, TAXII_MEDIA_TYPE};

use collections::{api_root, collection, collections, discovery};
use import::add_objects;
use media::negotiate;
use read::{manifest, object, objects, versions};
use status::{Statuses, status};

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

/// What the TAXII handlers keep between requests.
#[derive(Debug)]
pub(super) struct Shared {
    statuses: Statuses,
    /// What every request's view of the object index shares.
    catching: Arc<CatchUpLock>,
    /// The entry the last page ended in: the next page starts there, and decoding an
    /// entry of 10,000 items twice cost about as much as the page itself.
    last_row: Arc<listed::LastRow>,
}

impl Shared {
    /// The state of a node that answered nothing yet.
    pub(super) fn new() -> Shared {
        Shared {
            statuses: Statuses::default(),
            catching: Arc::new(CatchUpLock::default()),
            last_row: Arc::default(),
        }
    }
}
