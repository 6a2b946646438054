//! Both ends of a connection, captured once when it is accepted.

use std::net::{IpAddr, SocketAddr};

/// The client's address and the address it reached us on. The local end is
/// what the tutorial calls the "server ip": the host as the container or pod
/// sees it, never the 0.0.0.0 we bound to.
#[derive(Clone, Copy, Debug)]
pub struct ConnAddrs {
    pub remote: SocketAddr,
    pub local: SocketAddr,
}

/// Shows an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) as plain IPv4.
pub fn display_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}
