//! What the handlers share: the store, the network client, the publisher, the tokens and the state of
//! the API's parts (TAXII index, console, MISP feed), and the background tasks that keep
//! those parts up to date.

use std::sync::Arc;

use subtle::ConstantTimeEq;

use super::{Access, ApiLimits, FeedToken, guard, misp_feed, taxii, ui};
use crate::network::Client;
use crate::publish::Publisher;
use crate::store::Store;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub(super) store: Store,
    pub(super) client: Client,
    /// The node's one publisher: every request that publishes shares its fsyncs.
    pub(super) publisher: Publisher,
    pub(super) tokens: Arc<Vec<String>>,
    pub(super) read_tokens: Arc<Vec<String>>,
    pub(super) taxii: Arc<taxii::Shared>,
    pub(super) auth: Arc<guard::AuthLimiter>,
    pub(super) limits: ApiLimits,
    pub(super) console: Arc<ui::Console>,
    pub(super) misp_feed: Arc<misp_feed::Feed>,
}

impl ApiState {
    /// The API over `store` and `client`, publishing through `publisher` (the node's one,
    /// cloned), accepting any of `tokens` for everything.
    pub fn new(
        store: Store,
        client: Client,
        publisher: Publisher,
        tokens: Vec<String>,
    ) -> ApiState {
        let taxii = Arc::new(taxii::Shared::new());
        let limits = ApiLimits::default();
        ApiState {
            store,
            client,
            publisher,
            tokens: Arc::new(tokens),
            read_tokens: Arc::new(Vec::new()),
            taxii,
            auth: Arc::new(guard::AuthLimiter::new(&limits)),
            limits,
            console: Arc::new(ui::Console::default()),
            misp_feed: Arc::new(misp_feed::Feed::default()),
        }
    }

    /// The same API with `limits` instead of the defaults.
    pub fn with_limits(self, limits: ApiLimits) -> ApiState {
        ApiState {
            auth: Arc::new(guard::AuthLimiter::new(&limits)),
            limits,
            ..self
        }
    }

    /// The same API also accepting `tokens` as read tokens: each reads everything a full
    /// token reads, and every route that writes refuses it (403).
    pub fn with_read_tokens(self, tokens: Vec<String>) -> ApiState {
        ApiState {
            read_tokens: Arc::new(tokens),
            ..self
        }
    }

    /// The same API also accepting `tokens` as feed tokens: each reads the MISP feed
    /// (`/misp/feed/`) only, up to its TLP ceiling.
    pub fn with_feed_tokens(self, tokens: Vec<FeedToken>) -> ApiState {
        ApiState {
            misp_feed: Arc::new(misp_feed::Feed::new(tokens)),
            ..self
        }
    }

    /// What `presented` may do, or `None` when it is no configured token. It is compared
    /// with every token of both kinds in constant time, so timing tells nothing of their
    /// contents (`subtle` does let a length differing from every token's show). A token
    /// in both lists (the configuration refuses that) may read only.
    pub(crate) fn access(&self, presented: &str) -> Option<Access> {
        let matches = |tokens: &[String]| {
            tokens.iter().fold(subtle::Choice::from(0), |found, token| {
                found | token.as_bytes().ct_eq(presented.as_bytes())
            })
        };
        // Both lists in full before either result is looked at.
        let (full, read) = (matches(&self.tokens), matches(&self.read_tokens));
        if bool::from(read) {
            Some(Access::Read)
        } else if bool::from(full) {
            Some(Access::Write)
        } else {
            None
        }
    }
}

/// Keeps the TAXII object index up with the store in the background (see
/// `taxii::keep_indexed`); spawn it beside [`serve`](super::serve). Runs until the runtime stops.
pub async fn keep_taxii_index(state: ApiState) {
    taxii::keep_indexed(state).await;
}

/// Keeps the web console's record of the last hour (the Activity page's charts and the
/// peers' connection history); spawn it beside [`serve`](super::serve). Runs until the node stops.
pub async fn keep_console_activity(state: ApiState) {
    ui::keep_sampling(state).await;
}

/// Keeps the MISP feed's index up with the store in the background (see `misp_feed`), so
/// a MISP's first poll after a start is answered at once; spawn it beside [`serve`](super::serve) on a
/// node that serves a MISP. Runs until the runtime stops.
pub async fn keep_misp_feed_index(state: ApiState) {
    misp_feed::keep_indexed(state).await;
}
