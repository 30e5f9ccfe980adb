//! Per-address limits on incoming connections, applied before the handshake.
//!
//! The allow list can only refuse an outsider once the Noise handshake has named it, and
//! until then the connection holds one of the swarm's pending slots (`connection_limits`
//! caps them all together). Without a limit per address, one outsider could keep every
//! pending slot busy and lock the members out. So each new incoming connection is checked
//! against its remote address, as soon as TCP has accepted it and before a byte of the
//! handshake: at most `max_pending` handshakes per address at once, and new connections
//! per address at a sustained rate with a burst (a token bucket). A refusal closes the
//! socket and costs a map lookup.
//!
//! An address is an IPv4 address, or an IPv6 /64 (one customer's usual allocation, so
//! one host cannot dodge the limit by rotating its low bits). Established connections do
//! not count against the pending limit: a member connected before a flood stays
//! connected, and a handshake that never completes frees its slot after the handshake
//! timeout. State is kept for at most [`MAX_TRACKED`] addresses; an address with nothing
//! pending and a full bucket is the same as an unknown one, so it is dropped first, and
//! beyond that the least recently seen address without a pending handshake is forgotten.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::{ConnectionEstablished, ListenFailure};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm, dummy,
};
use tokio::time::Instant;

use super::limits::{Bucket, Rate};
use super::metrics::Metrics;

/// Most addresses with state at once, but for those with a handshake pending (which the
/// swarm's cap on pending connections bounds).
pub(crate) const MAX_TRACKED: usize = 4_096;

/// The per-address limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IpLimitConfig {
    /// Handshakes one address may have pending at once.
    pub(crate) max_pending: u32,
    /// New incoming connections one address may open per second, sustained.
    pub(crate) per_sec: f64,
    /// New incoming connections one address may open at once above that rate.
    pub(crate) burst: f64,
}

/// Why an incoming connection was refused before its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum IpOverLimit {
    /// The address already has as many handshakes pending as it may.
    #[error("{0} already has the most handshakes pending that one address may")]
    Pending(IpAddr),
    /// The address opened connections faster than it may.
    #[error("{0} opens connections faster than one address may")]
    Rate(IpAddr),
}

/// What is known of one address.
#[derive(Debug, Clone, Copy)]
struct Address {
    pending: u32,
    /// New connections it may open.
    bucket: Bucket,
}

/// The behaviour: refuses incoming connections over the per-address limits.
#[derive(Debug)]
pub(crate) struct IpLimits {
    config: IpLimitConfig,
    /// The connection rate of `config`.
    rate: Rate,
    addresses: HashMap<IpAddr, Address>,
    /// Handshakes pending, by connection: removed when the connection is established or
    /// fails. Bounded by the swarm's own cap on pending incoming connections.
    pending: HashMap<ConnectionId, IpAddr>,
    metrics: Arc<Metrics>,
}

impl IpLimits {
    pub(crate) fn new(config: IpLimitConfig, metrics: Arc<Metrics>) -> IpLimits {
        let config = IpLimitConfig {
            max_pending: config.max_pending.max(1),
            per_sec: config.per_sec.max(0.0),
            burst: config.burst.max(1.0),
        };
        IpLimits {
            config,
            rate: Rate {
                per_sec: config.per_sec,
                burst: config.burst,
            },
            addresses: HashMap::new(),
            pending: HashMap::new(),
            metrics,
        }
    }

    /// Admits a new connection from `ip` now, or says why not.
    fn admit(&mut self, ip: IpAddr, now: Instant) -> Result<(), IpOverLimit> {
        if !self.addresses.contains_key(&ip) && self.addresses.len() >= MAX_TRACKED {
            self.make_room(now);
        }
        let (rate, max_pending) = (self.rate, self.config.max_pending);
        let address = self.addresses.entry(ip).or_insert(Address {
            pending: 0,
            bucket: Bucket::full(rate, now),
        });
        address.bucket.refill(rate, now);
        if address.pending >= max_pending {
            return Err(IpOverLimit::Pending(ip));
        }
        if address.bucket.tokens < 1.0 {
            return Err(IpOverLimit::Rate(ip));
        }
        address.bucket.tokens -= 1.0;
        address.pending += 1;
        Ok(())
    }

    /// The handshake of `connection` ended (established or failed).
    fn settle(&mut self, connection: ConnectionId) {
        if let Some(ip) = self.pending.remove(&connection)
            && let Some(address) = self.addresses.get_mut(&ip)
        {
            address.pending = address.pending.saturating_sub(1);
        }
        self.metrics.set_pending_inbound(self.pending.len());
    }

    /// Frees at least one place in `addresses`: first every address that is as good as
    /// unknown (nothing pending, bucket refilled), then, if none was, the least recently
    /// seen address with nothing pending. Addresses with a handshake pending are kept: the
    /// swarm's pending cap bounds how many there are, far below [`MAX_TRACKED`].
    fn make_room(&mut self, now: Instant) {
        let rate = self.rate;
        self.addresses
            .retain(|_, address| address.pending > 0 || !address.bucket.is_full(rate, now));
        if self.addresses.len() < MAX_TRACKED {
            return;
        }
        let oldest = self
            .addresses
            .iter()
            .filter(|(_, address)| address.pending == 0)
            .min_by_key(|(_, address)| address.bucket.updated)
            .map(|(ip, _)| *ip);
        if let Some(ip) = oldest {
            self.addresses.remove(&ip);
        }
    }

    /// Addresses with state now.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.addresses.len()
    }
}

/// The address an incoming connection is limited by: its IP, IPv6 cut to the /64, an
/// IPv4-mapped IPv6 address read as the IPv4 one. `None` for transports without an IP.
fn limited_address(remote: &Multiaddr) -> Option<IpAddr> {
    remote.iter().find_map(|protocol| match protocol {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(limited_ip(IpAddr::V6(ip))),
        _ => None,
    })
}

/// The part of `ip` that one holder controls, which limits go by: an IPv4 address (also
/// when written as IPv4-mapped IPv6), or the /64 of an IPv6 address, since one host
/// usually holds a whole /64 and could otherwise take a fresh address per attempt.
pub(crate) fn limited_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
        },
    }
}

impl NetworkBehaviour for IpLimits {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(ip) = limited_address(remote_addr) else {
            return Ok(());
        };
        self.admit(ip, Instant::now())
            .map_err(ConnectionDenied::new)?;
        self.pending.insert(connection_id, ip);
        self.metrics.set_pending_inbound(self.pending.len());
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _peer: PeerId,
        _local_addr: &Multiaddr,
        _remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.settle(connection_id);
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        // Whichever ends the handshake: a behaviour before this one may refuse the
        // established connection, so this one's `handle_established_*` never runs.
        match event {
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. })
            | FromSwarm::ConnectionEstablished(ConnectionEstablished { connection_id, .. }) => {
                self.settle(connection_id);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        libp2p::core::util::unreachable(event)
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::net::Ipv4Addr;
    use std::time::Duration;

    use super::*;

    fn limits(max_pending: u32, per_sec: f64, burst: f64) -> IpLimits {
        IpLimits::new(
            IpLimitConfig {
                max_pending,
                per_sec,
                burst,
            },
            Arc::new(Metrics::default()),
        )
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    #[test]
    fn pending_handshakes_are_capped_per_address_and_free_when_they_end() {
        let mut limits = limits(2, 1000.0, 1000.0);
        let now = Instant::now();
        let (a, b, c) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
            ConnectionId::new_unchecked(3),
        );
        for connection in [a, b] {
            limits.admit(ip(1), now).unwrap();
            limits.pending.insert(connection, ip(1));
        }
        assert_eq!(limits.admit(ip(1), now), Err(IpOverLimit::Pending(ip(1))));
        // Another address is not affected.
        limits.admit(ip(2), now).unwrap();
        limits.pending.insert(c, ip(2));
        // One handshake ends: one more may start.
        limits.settle(a);
        limits.admit(ip(1), now).unwrap();
        assert_eq!(limits.metrics.snapshot().pending_inbound, 2);
    }

    #[test]
    fn new_connections_are_rate_limited_per_address() {
        let mut limits = limits(1000, 2.0, 5.0);
        let now = Instant::now();
        let admitted = (0..20).filter(|_| limits.admit(ip(1), now).is_ok()).count();
        assert_eq!(admitted, 5, "the burst");
        assert_eq!(limits.admit(ip(1), now), Err(IpOverLimit::Rate(ip(1))));
        assert!(
            limits.admit(ip(2), now).is_ok(),
            "others have their own bucket"
        );
        let later = now + Duration::from_millis(500);
        assert!(limits.admit(ip(1), later).is_ok(), "one token refilled");
        assert!(limits.admit(ip(1), later).is_err());
    }

    #[test]
    fn state_stays_bounded_and_drops_idle_addresses_first() {
        let mut limits = limits(4, 1.0, 4.0);
        let start = Instant::now();
        // One address with a handshake pending, then many that come and go.
        limits.admit(ip(1), start).unwrap();
        limits.pending.insert(ConnectionId::new_unchecked(1), ip(1));
        for n in 0..(2 * MAX_TRACKED as u32) {
            let address = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
            let now = start + Duration::from_millis(u64::from(n));
            limits.admit(address, now).unwrap();
            // Its handshake ends at once.
            let connection = ConnectionId::new_unchecked(2 + n as usize);
            limits.pending.insert(connection, address);
            limits.settle(connection);
            assert!(limits.tracked() <= MAX_TRACKED);
        }
        // The address with a pending handshake was never forgotten.
        assert_eq!(limits.addresses[&ip(1)].pending, 1);
    }

    #[test]
    fn addresses_are_read_from_multiaddrs() {
        let v4: Multiaddr = "/ip4/192.0.2.7/tcp/4001".parse().unwrap();
        assert_eq!(limited_address(&v4), Some(ip(7)));
        let v6: Multiaddr = "/ip6/2001:db8:1:2:aaaa:bbbb:cccc:dddd/tcp/4001"
            .parse()
            .unwrap();
        let same_64: Multiaddr = "/ip6/2001:db8:1:2::1/tcp/1".parse().unwrap();
        assert_eq!(limited_address(&v6), limited_address(&same_64));
        let mapped: Multiaddr = "/ip6/::ffff:192.0.2.7/tcp/4001".parse().unwrap();
        assert_eq!(limited_address(&mapped), Some(ip(7)));
        let dns: Multiaddr = "/dns4/example.org/tcp/4001".parse().unwrap();
        assert_eq!(limited_address(&dns), None);
    }
}
