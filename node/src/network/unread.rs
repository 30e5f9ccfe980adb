//! Sealed entries for this organisation that did not open when they arrived, tried again.
//!
//! An entry sealed to a key the node did not hold yet (the organisation rotated its key
//! and the node was given the new one later, or the node ran without a key) is stored
//! unread and marked in the store. Whenever keys may have changed (at start, and each
//! time a key is added) a pass walks the marked entries in steps of [`STEP`], each on a
//! blocking thread, and stores the bundle of each that opens now, as if it had opened on
//! arrival. A store with many unread entries is worked through a step at a time, with
//! progress in the log and the `store_sealed_unread_entries` gauge; ingest and the API go
//! on meanwhile. Entries that still do not open stay marked for the next pass.

use std::sync::Arc;

use threatmesh_protocol::entry::Body;
use threatmesh_protocol::seal::SealContext;
use threatmesh_protocol::{Hash, PublicKey, SignedCharter};
use tokio::sync::{mpsc, watch};
use tracing::{Instrument as _, debug, info, warn};

use super::clock::ClockWatch;
use super::keyring::Keyring;
use super::metrics::Metrics;
use crate::store::{Store, StoreError};

/// Unread entries tried per step: each costs one X25519 operation per key, a decode and
/// for those that open a write, so a step holds a blocking thread for milliseconds and
/// the bundles it opened (under 1 MiB each) are all it keeps in memory.
const STEP: usize = 64;

/// Passes asked for and not yet started. One is enough: a pass reads the keys afresh at
/// every step, so it serves every request made before it started.
const TRIGGER_CAP: usize = 1;

/// Log progress every this many entries tried in one pass.
const PROGRESS_EVERY: u64 = 4096;

/// A handle that asks for a pass.
#[derive(Debug, Clone)]
pub(crate) struct Trigger(mpsc::Sender<()>);

impl Trigger {
    /// A trigger no pass listens to, for tests of the ingest pipeline alone.
    #[cfg(test)]
    pub(crate) fn detached() -> Trigger {
        Trigger(mpsc::channel(TRIGGER_CAP).0)
    }

    /// Asks for a pass over the unread entries; never waits (a pass already asked for
    /// covers this request too).
    pub(crate) fn pull(&self) {
        let _ = self.0.try_send(());
    }
}

/// What a pass needs.
#[derive(Debug, Clone)]
pub(crate) struct Retrier {
    pub(crate) store: Store,
    pub(crate) charter: watch::Receiver<Arc<SignedCharter>>,
    pub(crate) keyring: Keyring,
    /// This node's key: its organisation, in the charter, is who it opens entries as.
    pub(crate) node: PublicKey,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) clock: Arc<ClockWatch>,
}

/// Why a pass stopped before its end.
#[derive(Debug, thiserror::Error)]
enum PassError {
    /// The store refused a read or a write (a full disk, say).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A step's blocking task did not finish.
    #[error("a step did not finish: {0}")]
    Step(#[from] tokio::task::JoinError),
}

/// What one step did.
#[derive(Debug, Default)]
struct Step {
    /// The last entry tried: the next step starts after it.
    last: Option<Hash>,
    opened: u64,
    failed: u64,
    /// Fewer entries than a step's worth were left.
    done: bool,
}

/// Starts the task that runs a pass per request; the first request is made here, so the
/// node tries its unread entries at every start. The task ends when every [`Trigger`] is
/// gone.
pub(crate) fn spawn(retrier: Retrier) -> Trigger {
    let (sender, mut receiver) = mpsc::channel(TRIGGER_CAP);
    let trigger = Trigger(sender);
    trigger.pull();
    // A task starts outside any span: it keeps the one it is spawned in (the node's).
    tokio::spawn(
        async move {
            while receiver.recv().await.is_some() {
                if let Err(error) = retrier.pass().await {
                    warn!(%error, "trying unread sealed entries again stopped; the next key added or restart resumes it");
                }
            }
        }
        .in_current_span(),
    );
    trigger
}

impl Retrier {
    /// Tries every unread entry once with the keys held now.
    async fn pass(&self) -> Result<(), PassError> {
        let org = self
            .charter
            .borrow()
            .charter()
            .node(&self.node)
            .map(|(member, _)| member.org);
        let Some(org) = org else {
            return Ok(());
        };
        if self.keyring.is_empty() {
            return Ok(());
        }
        let store = self.store.clone();
        let span = tracing::Span::current();
        let waiting = tokio::task::spawn_blocking(move || span.in_scope(|| store.stats()))
            .await??
            .unread;
        if waiting == 0 {
            return Ok(());
        }
        info!(
            waiting,
            keys = self.keyring.len(),
            "trying again the sealed entries that did not open"
        );
        let (mut opened, mut failed) = (0u64, 0u64);
        let mut after = None;
        loop {
            let retrier = self.clone();
            let span = tracing::Span::current();
            let step =
                tokio::task::spawn_blocking(move || span.in_scope(|| retrier.step(after, org)))
                    .await??;
            let before = opened + failed;
            opened += step.opened;
            failed += step.failed;
            if (opened + failed) / PROGRESS_EVERY > before / PROGRESS_EVERY {
                info!(
                    tried = opened + failed,
                    of = waiting,
                    opened,
                    "unread sealed entries: progress"
                );
            }
            if step.done {
                break;
            }
            after = step.last;
            // Let ingest and the API in between steps.
            tokio::task::yield_now().await;
        }
        info!(
            opened,
            still_unread = failed,
            "unread sealed entries tried again"
        );
        Ok(())
    }

    /// Tries the next [`STEP`] unread entries after `after` as organisation `org`, and
    /// waits until what it stored is on disk. Blocks.
    fn step(&self, after: Option<Hash>, org: PublicKey) -> Result<Step, StoreError> {
        let ids = self.store.unread_after(after.as_ref(), STEP)?;
        let mut step = Step {
            last: ids.last().copied(),
            done: ids.len() < STEP,
            ..Step::default()
        };
        let mut written = None;
        for id in &ids {
            let Some(entry) = self.store.entry(id)? else {
                continue;
            };
            let Body::Sealed(sealed) = &entry.entry().body else {
                continue;
            };
            match self
                .keyring
                .open(sealed, &SealContext::of(entry.entry()), &org)
            {
                Ok(bundle) => {
                    if let Some(ticket) =
                        self.store
                            .read_later(id, &bundle, self.clock.clock().now())?
                    {
                        written = Some(ticket);
                        step.opened += 1;
                        self.metrics.sealed_retried(true);
                    }
                }
                Err(reason) => {
                    debug!(entry = %id, %reason, "a sealed entry still does not open");
                    step.failed += 1;
                    self.metrics.sealed_retried(false);
                }
            }
        }
        // One flush for the step: the tickets are handed out in order.
        if let Some(ticket) = written {
            self.store.wait_durable(ticket)?;
        }
        Ok(step)
    }
}
