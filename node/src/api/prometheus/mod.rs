//! The Prometheus text exposition of the node's counters and gauges.
//!
//! Every metric is described once, in the table of `table.rs` ([`METRICS`]): its name,
//! type, help text, labels and how its samples are read from what the node reports
//! ([`Sources`]). [`render`] writes the table out in order. A metric whose source could not be read keeps its HELP and
//! TYPE lines with no samples, so a dashboard sees it missing rather than at zero.

mod table;

use std::fmt::Write as _;

use super::guard::ApiCounters;
use crate::network::{INGEST_BUCKETS_MICROS, Snapshot};
use crate::store::{FeedState, Space, Stats};
use table::METRICS;

/// Everything the metrics are read from, at one moment.
struct Sources<'a> {
    network: &'a Snapshot,
    api: &'a ApiCounters,
    /// `None` when the store could not be read.
    store: Option<&'a Stats>,
    disk: &'a Space,
    /// `None` when the store could not be read.
    feeds: Option<&'a [FeedState]>,
    peers: usize,
}

/// A metric's Prometheus type.
#[derive(Debug, Clone, Copy)]
enum Type {
    Counter,
    Gauge,
    Histogram,
}

impl Type {
    fn as_str(self) -> &'static str {
        match self {
            Type::Counter => "counter",
            Type::Gauge => "gauge",
            Type::Histogram => "histogram",
        }
    }
}

/// Reads one value.
type Reader = fn(&Sources<'_>) -> u64;

/// How a metric's samples are read.
enum Read {
    /// One sample, no labels.
    Value(Reader),
    /// One sample, no labels, when its source could be read (`Some`); none otherwise.
    Known(fn(&Sources<'_>) -> Option<u64>),
    /// One sample when the value is known; otherwise the metric is left out entirely,
    /// HELP and TYPE included.
    IfKnown(fn(&Sources<'_>) -> Option<u64>),
    /// One sample per value of `label`, in the order listed.
    By {
        label: &'static str,
        values: &'static [(&'static str, Reader)],
    },
    /// One sample per value of `label` that the node reports now (reasons, feeds).
    Each {
        label: &'static str,
        samples: fn(&Sources<'_>) -> Vec<(String, u64)>,
    },
    /// One signed sample, no labels.
    Signed(fn(&Sources<'_>) -> i64),
    /// The ingest latency histogram: cumulative buckets in seconds, a sum and a count.
    IngestHistogram,
}

/// One metric, exposed as `threatmesh_<name>`.
struct Metric {
    name: &'static str,
    kind: Type,
    help: &'static str,
    read: Read,
}

/// Renders the metrics as Prometheus text format 0.0.4.
pub(super) fn render(
    network: &Snapshot,
    api: &ApiCounters,
    store: Option<&Stats>,
    disk: &Space,
    feeds: Option<&[FeedState]>,
    peers: usize,
) -> String {
    let sources = Sources {
        network,
        api,
        store,
        disk,
        feeds,
        peers,
    };
    let mut out = String::new();
    for metric in METRICS {
        write_metric(&mut out, metric, &sources);
    }
    out
}

/// Writes `metric`'s HELP, TYPE and samples (none of them if it is left out).
fn write_metric(out: &mut String, metric: &Metric, sources: &Sources<'_>) {
    let name = metric.name;
    if let Read::IfKnown(read) = metric.read
        && read(sources).is_none()
    {
        return;
    }
    let _ = writeln!(out, "# HELP threatmesh_{name} {}", metric.help);
    let _ = writeln!(out, "# TYPE threatmesh_{name} {}", metric.kind.as_str());
    match &metric.read {
        Read::Value(read) => {
            let _ = writeln!(out, "threatmesh_{name} {}", read(sources));
        }
        Read::Known(read) | Read::IfKnown(read) => {
            if let Some(value) = read(sources) {
                let _ = writeln!(out, "threatmesh_{name} {value}");
            }
        }
        Read::By { label, values } => {
            for (value, read) in *values {
                let _ = writeln!(
                    out,
                    "threatmesh_{name}{{{label}=\"{value}\"}} {}",
                    read(sources)
                );
            }
        }
        Read::Each { label, samples } => {
            for (value, sample) in samples(sources) {
                let _ = writeln!(out, "threatmesh_{name}{{{label}=\"{value}\"}} {sample}");
            }
        }
        Read::Signed(read) => {
            let _ = writeln!(out, "threatmesh_{name} {}", read(sources));
        }
        Read::IngestHistogram => write_ingest_histogram(out, name, sources.network),
    }
}

/// The samples of the ingest latency histogram: cumulative buckets in seconds, a sum and
/// a count.
fn write_ingest_histogram(out: &mut String, name: &str, network: &Snapshot) {
    let mut cumulative = 0;
    for (index, count) in network.ingest_buckets.iter().enumerate() {
        cumulative += count;
        let bound = INGEST_BUCKETS_MICROS.get(index).map_or_else(
            || "+Inf".to_owned(),
            |micros| format!("{}", *micros as f64 / 1e6),
        );
        let _ = writeln!(
            out,
            "threatmesh_{name}_bucket{{le=\"{bound}\"}} {cumulative}"
        );
    }
    let sum = network.ingest_micros_sum as f64 / 1e6;
    let _ = writeln!(out, "threatmesh_{name}_sum {sum}");
    let _ = writeln!(out, "threatmesh_{name}_count {cumulative}");
}

#[cfg(test)]
mod tests;
