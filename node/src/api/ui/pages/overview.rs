//! `GET /ui/overview`: the federation, its members and this node's health at a glance.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use libp2p::PeerId;
use maud::html;
use threatmesh_protocol::PublicKey;

use crate::api::ui::{Refusal, author_name, html as page, signed_in};
use crate::api::{ApiState, blocking};

use super::{ago, frame, size, when};

/// `GET /ui/overview`: the federation, its members and this node's health.
pub(crate) async fn overview(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let signed_in = signed_in(&state, &headers)?;
    let charter = state.client.charter();
    let connected: Vec<PeerId> = state
        .client
        .peers()
        .await
        .map_err(crate::api::ApiError::from)?;
    let metrics = state.client.metrics();
    let now = state.client.now();
    state.console.activity.connected(&connected, now);
    let store = state.store.clone();
    let (reading, refusal) =
        blocking(move || (crate::api::StoreReading::of(&store), store.write_refusal())).await?;
    let own = state.client.node_key();
    let activity = &state.console.activity;
    let (stats, feeds) = match &reading.read {
        Ok((stats, feeds)) => (Some(stats), feeds.as_slice()),
        Err(_) => (None, &[][..]),
    };
    let lag: HashMap<PublicKey, u64> = feeds
        .iter()
        .map(|feed| {
            let advertised = metrics.advertised.get(&feed.author).copied().unwrap_or(0);
            (feed.author, advertised.saturating_sub(feed.contiguous))
        })
        .collect();
    let equivocated: Vec<String> = feeds
        .iter()
        .filter(|feed| feed.equivocated)
        .map(|feed| author_name(&charter, &feed.author))
        .collect();
    let body = html! {
        section aria-labelledby="federation-heading" {
            h2 id="federation-heading" { "Federation" }
            dl.facts {
                dt { "Name" } dd id="federation-name" { (charter.charter().name) }
                dt { "Charter version" } dd id="charter-version" { (charter.charter().version) }
                dt { "Issued" } dd { (when(charter.charter().issued)) }
                dt { "This node" } dd { (author_name(&charter, &own)) }
            }
        }
        section aria-labelledby="alerts-heading" {
            h2 id="alerts-heading" { "Alerts" }
            ul id="alerts" {
                @if let Some(refusal) = &refusal {
                    li.alert { "Writes refused: " (refusal) }
                }
                @if let Err(error) = &reading.read {
                    li.alert { "The store cannot be read: " (error) }
                }
                @for name in &equivocated {
                    li.alert { "Equivocation: a node of " (name) " signed two different entries for one place in its feed." }
                }
                @if metrics.peers_banned > 0 {
                    li.alert { (metrics.peers_banned) " peer(s) banned for misbehaviour since the node started." }
                }
                @if let Some(offset) = metrics.clock.suspected_offset_secs {
                    li.alert { "Clock warning: this node's clock seems " (offset.unsigned_abs()) " s "
                        (if offset < 0 { "behind" } else { "ahead of" }) " the organisations' clocks." }
                }
                @if connected.is_empty() {
                    li.alert { "No member is connected." }
                }
                @if reading.read.is_ok() && equivocated.is_empty() && metrics.peers_banned == 0
                    && metrics.clock.suspected_offset_secs.is_none() && !connected.is_empty()
                    && refusal.is_none() {
                    li.ok { "None." }
                }
            }
        }
        section aria-labelledby="members-heading" {
            h2 id="members-heading" { "Members" }
            div.scroll tabindex="0" role="region" aria-label="Members" {
                table id="members" {
                    thead { tr {
                        th scope="col" { "Organisation" } th scope="col" { "Country" }
                        th scope="col" { "Roles" } th scope="col" { "Status" }
                        th scope="col" { "Connected" } th scope="col" { "Last heard from" }
                        th scope="col" { "Lag (entries)" }
                    } }
                    tbody {
                        @for member in &charter.charter().members {
                            @let peers: Vec<PeerId> = member.nodes.iter()
                                .filter_map(|cert| PeerId::from_bytes(&cert.node.peer_id_bytes()).ok())
                                .collect();
                            @let is_own = member.nodes.iter().any(|cert| cert.node == own);
                            @let is_connected = peers.iter().any(|peer| connected.contains(peer));
                            @let heard = peers.iter().filter_map(|peer| activity.last_connected(peer)).max();
                            @let behind: u64 = member.nodes.iter().filter_map(|cert| lag.get(&cert.node)).sum();
                            tr.member data-org=(member.name) {
                                th scope="row" { (member.name) @if is_own { " (this node)" } }
                                td { (member.country) }
                                td { (roles(member)) }
                                td { (standing(&member.status)) }
                                td.connected { @if is_own { "—" } @else if is_connected { "yes" } @else { "no" } }
                                td { @if is_own { "—" } @else if is_connected { "now" }
                                     @else if let Some(heard) = heard { (ago(heard, now)) }
                                     @else { "not since the node started" } }
                                td { (behind) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="node-heading" {
            h2 id="node-heading" { "This node" }
            dl.facts {
                @if let Some(stats) = stats {
                    dt { "Entries held" } dd id="entries-held" { (stats.entries) }
                    dt { "Indicator records" } dd { (stats.records) }
                    dt { "Sealed entries" } dd { (stats.sealed) " (" (stats.unread) " not readable here)" }
                    dt { "Store on disk" } dd { (size(stats.bytes_on_disk)) }
                }
                dt { "Disk free" } dd { @if let Some(free) = reading.disk.free_bytes { (size(free)) } @else { "unknown" } }
                dt { "Disk reserve" } dd { (size(reading.disk.reserve_bytes)) }
                dt { "Peers connected" } dd { (connected.len()) }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        frame("Overview", "overview", Some(&signed_in), body),
    ))
}

fn roles(member: &threatmesh_protocol::charter::Member) -> &'static str {
    match (member.roles.publish, member.roles.read) {
        (true, true) => "publish, read",
        (true, false) => "publish",
        (false, true) => "read",
        (false, false) => "none",
    }
}

fn standing(status: &threatmesh_protocol::charter::Status) -> String {
    use threatmesh_protocol::charter::Status;
    match status {
        Status::Active => "active".to_owned(),
        Status::Suspended { since } => format!("suspended since {}", when(*since)),
        Status::Revoked { since, .. } => format!("revoked since {}", when(*since)),
    }
}
