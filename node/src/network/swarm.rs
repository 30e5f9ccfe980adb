//! Builds the node's swarm: the transport (`transport.rs`), the behaviours
//! (`behaviour.rs`) with the settings they take from [`Config`], the federation's gossip
//! topic, and the listeners. The event loop owns what this returns.

use std::sync::Arc;
use std::time::Duration;

use libp2p::Swarm;
use libp2p::gossipsub::IdentTopic;
use threatmesh_protocol::{Hash, SigningKey};

use super::behaviour::{Behaviour, Settings};
use super::ip_limits::IpLimitConfig;
use super::metrics::Metrics;
use super::{Config, NetworkError};

/// How long a connection with nothing open on it is kept.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(300);

/// The gossip topic of `federation`: one per federation, so nodes of two federations that
/// meet never mix their entries.
pub(crate) fn topic(federation: Hash) -> IdentTopic {
    IdentTopic::new(format!("/threatmesh/{federation}/1"))
}

/// The swarm of the node with key `node_key` in `federation`, subscribed to its topic and
/// listening on `config.listen`.
pub(crate) fn build(
    config: &Config,
    node_key: &SigningKey,
    federation: Hash,
    metrics: &Arc<Metrics>,
) -> Result<(Swarm<Behaviour>, IdentTopic), NetworkError> {
    let libp2p_error = |error: &dyn std::fmt::Display| NetworkError::Libp2p(error.to_string());
    let keypair = libp2p::identity::Keypair::ed25519_from_bytes(node_key.to_bytes())
        .map_err(|error| libp2p_error(&error))?;
    let settings = Settings {
        heartbeat: config.heartbeat,
        max_connections: config.max_connections,
        request_timeout: config.request_timeout,
        mdns: config.mdns,
        target_peers: config.target_peers,
        ip_limits: IpLimitConfig {
            max_pending: config.ip_max_pending,
            per_sec: f64::from(config.ip_connections_per_sec),
            burst: f64::from(config.ip_connection_burst),
        },
        metrics: Arc::clone(metrics),
    };
    // TCP, Noise and yamux as `with_tcp` builds them, counting every byte.
    let transport =
        super::transport::build(&config.carrier, &keypair, Arc::clone(&metrics.transport))
            .map_err(|error| libp2p_error(&error))?;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_other_transport(|_| transport)
        .map_err(|error| libp2p_error(&error))?
        .with_behaviour(|key| Behaviour::new(key, &settings))
        .map_err(|error| libp2p_error(&error))?
        .with_swarm_config(|swarm| swarm.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .with_connection_timeout(config.handshake_timeout)
        .build();
    let topic = topic(federation);
    swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&topic)
        .map_err(|error| libp2p_error(&error))?;
    for address in &config.listen {
        swarm
            .listen_on(address.clone())
            .map_err(|error| libp2p_error(&error))?;
    }
    Ok((swarm, topic))
}
