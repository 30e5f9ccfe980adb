//! `GET /ui/activity`: the last hour's propagation and ingest as charts, and the peers'
//! comings and goings.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use libp2p::PeerId;
use maud::{PreEscaped, html};

use crate::api::ApiState;
use crate::api::ui::activity::{Series, line_chart};
use crate::api::ui::{Refusal, html as page, signed_in};

use super::{ago, frame, when};

/// `GET /ui/activity`: the last hour's propagation and ingest, and the peers' comings
/// and goings.
pub(crate) async fn activity(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let signed_in = signed_in(&state, &headers)?;
    let charter = state.client.charter();
    let activity = &state.console.activity;
    // The history is sampled every few seconds: bring it up to now first.
    let now = state.client.now();
    let connected = state
        .client
        .peers()
        .await
        .map_err(crate::api::ApiError::from)?;
    activity.connected(&connected, now);
    let points = activity.points();
    let events = activity.events();
    let name_of = |peer: &PeerId| {
        charter
            .charter()
            .members
            .iter()
            .find(|member| {
                member.nodes.iter().any(|cert| {
                    PeerId::from_bytes(&cert.node.peer_id_bytes()).is_ok_and(|id| id == *peer)
                })
            })
            .map_or_else(|| peer.to_string(), |member| member.name.clone())
    };
    let propagation = line_chart(
        "propagation-chart",
        "Time from creation to arrival of other nodes' entries",
        "ms",
        &[
            Series {
                name: "median",
                values: points
                    .iter()
                    .map(|point| point.median_delay_ms.map(|ms| ms as f64))
                    .collect(),
            },
            Series {
                name: "slowest",
                values: points
                    .iter()
                    .map(|point| point.max_delay_ms.map(|ms| ms as f64))
                    .collect(),
            },
        ],
    );
    let ingest = line_chart(
        "ingest-chart",
        "Entries accepted and fetched by sync per interval",
        "entries",
        &[
            Series {
                name: "accepted",
                values: points
                    .iter()
                    .map(|point| Some(point.accepted as f64))
                    .collect(),
            },
            Series {
                name: "fetched by sync",
                values: points
                    .iter()
                    .map(|point| Some(point.fetched as f64))
                    .collect(),
            },
            Series {
                name: "refused",
                values: points
                    .iter()
                    .map(|point| Some(point.rejected as f64))
                    .collect(),
            },
        ],
    );
    let body = html! {
        p.hint { "One point every " (crate::api::ui::activity::SAMPLE_EVERY.as_secs()) " s since the node started, for the last hour ("
            (points.len()) " so far)." }
        section aria-labelledby="propagation-heading" {
            h2 id="propagation-heading" { "Propagation" }
            (PreEscaped(propagation))
        }
        section aria-labelledby="ingest-heading" {
            h2 id="ingest-heading" { "Ingest" }
            (PreEscaped(ingest))
        }
        section aria-labelledby="connections-heading" {
            h2 id="connections-heading" { "Connections" }
            div.scroll tabindex="0" role="region" aria-label="Connection history" {
                table id="connections" {
                    thead { tr { th scope="col" { "When" } th scope="col" { "Organisation (node)" } th scope="col" { "Event" } } }
                    tbody {
                        @if events.is_empty() {
                            tr { td colspan="3" { "No connection has come or gone since the node started." } }
                        }
                        @for event in &events {
                            tr {
                                td { time datetime=(when(event.at)) { (ago(event.at, now)) } }
                                td { (name_of(&event.peer)) }
                                td { @if event.connected { "connected" } @else { "left" } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        frame("Activity", "activity", Some(&signed_in), body),
    ))
}
