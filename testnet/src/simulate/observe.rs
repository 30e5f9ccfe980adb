//! What the simulation learns from the nodes' own logs: which peer delivered each entry to
//! each node first, and how many copies of it came after.
//!
//! A node logs an event (target [`RELAY_TARGET`]) when it has verified a gossiped entry
//! and lets gossipsub forward it; gossipsub logs one (at debug) for every copy of a
//! message it has already seen, and drops that copy. A tracing layer here keeps both, so
//! the simulation can rebuild the tree each entry spread along (hops) and count the
//! duplicates each node received, without touching the node's code paths. Gossipsub runs
//! in the node's event loop, which the simulation runs inside a span naming the node
//! ([`NODE_SPAN`]); that is how a duplicate is put down to its node. Every other log line
//! goes to standard error at `warn` (`error` for yamux, nothing from gossipsub) unless
//! `RUST_LOG` says otherwise.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use threatmesh_node::network::RELAY_TARGET;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, filter};

/// The span a simulated node's event loop runs in; its field `node` is the node's index.
pub(crate) const NODE_SPAN: &str = "sim_node";
/// Where gossipsub logs a copy of a message it had seen already.
const GOSSIPSUB_TARGET: &str = "libp2p_gossipsub::behaviour";
const DUPLICATE_MESSAGE: &str = "Message already received, ignoring";

/// One node's first delivery of one entry.
#[derive(Debug, Clone)]
pub(crate) struct Relay {
    /// The receiving node's key, as the node logs it.
    pub(crate) node: String,
    /// The entry id.
    pub(crate) entry: String,
    /// The peer it came from.
    pub(crate) from: String,
    /// Milliseconds since the Unix epoch, when it was verified.
    pub(crate) at_ms: u64,
}

/// What the layer has seen since the last [`take`].
#[derive(Debug, Default)]
pub(crate) struct Observed {
    pub(crate) relays: Vec<Relay>,
    /// (node index, message id in hex) -> copies gossipsub dropped as already seen.
    pub(crate) duplicates: HashMap<(usize, String), u32>,
}

fn observed() -> &'static Mutex<Observed> {
    static OBSERVED: OnceLock<Mutex<Observed>> = OnceLock::new();
    OBSERVED.get_or_init(|| Mutex::new(Observed::default()))
}

/// Installs the log subscriber (once per process; later calls do nothing).
pub(crate) fn install() {
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            // yamux warns of every link closed while pruning ("broken pipe") and gossipsub
            // complains of messages for peers that just left: at a thousand nodes that is
            // thousands of lines about nothing.
            EnvFilter::new("warn,yamux=error,libp2p_gossipsub=off")
        }));
    let capture = Capture.with_filter(
        filter::Targets::new()
            .with_target(RELAY_TARGET, tracing::Level::DEBUG)
            .with_target(GOSSIPSUB_TARGET, tracing::Level::DEBUG)
            .with_target(
                module_path!().replace("observe", "world"),
                tracing::Level::INFO,
            ),
    );
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(capture)
        .try_init();
}

/// Takes everything seen since the last call.
pub(crate) fn take() -> Observed {
    std::mem::take(
        &mut *observed()
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()),
    )
}

/// The node index a [`NODE_SPAN`] carries, kept in the span's extensions.
struct NodeIndex(usize);

struct Capture;

impl<S> Layer<S> for Capture
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, context: Context<'_, S>) {
        if attributes.metadata().name() != NODE_SPAN {
            return;
        }
        let mut fields = Fields::default();
        attributes.record(&mut fields);
        if let (Some(index), Some(span)) = (fields.index, context.span(id)) {
            span.extensions_mut().insert(NodeIndex(index));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, context: Context<'_, S>) {
        // gossipsub logs much at debug; only its duplicate line has a `message_id` field,
        // so the others are passed over before any field is formatted.
        if event.metadata().target() == GOSSIPSUB_TARGET
            && event.metadata().fields().field("message_id").is_none()
        {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        if event.metadata().target() == GOSSIPSUB_TARGET {
            if fields.message.as_deref() != Some(DUPLICATE_MESSAGE) {
                return;
            }
            let node = context.event_scope(event).and_then(|scope| {
                scope
                    .into_iter()
                    .find_map(|span| span.extensions().get::<NodeIndex>().map(|node| node.0))
            });
            if let (Some(node), Some(id)) = (node, fields.message_id) {
                *observed()
                    .lock()
                    .unwrap_or_else(|poison| poison.into_inner())
                    .duplicates
                    .entry((node, id))
                    .or_default() += 1;
            }
            return;
        }
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64);
        if let (Some(node), Some(entry), Some(from)) = (fields.node, fields.entry, fields.from) {
            observed()
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .relays
                .push(Relay {
                    node,
                    entry,
                    from,
                    at_ms,
                });
        }
    }
}

#[derive(Default)]
struct Fields {
    node: Option<String>,
    entry: Option<String>,
    from: Option<String>,
    message: Option<String>,
    message_id: Option<String>,
    /// The `node` field of a [`NODE_SPAN`].
    index: Option<usize>,
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "node" {
            self.index = usize::try_from(value).ok();
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let slot = match field.name() {
            "node" => &mut self.node,
            "entry" => &mut self.entry,
            "from" => &mut self.from,
            "message" => &mut self.message,
            "message_id" => &mut self.message_id,
            _ => return,
        };
        *slot = Some(format!("{value:?}"));
    }
}
