//! `connect`: the host name resolved through wasi:sockets/ip-name-lookup (an IP address is used
//! as it is: wasmtime refuses to "look up" one), then a TCP connect to each address in turn
//! until one answers, all within one connect timeout.

use crate::errors;
use crate::exports::leashed::net::tcp::{ErrorCode, SocketAddress};
use crate::wasi::sockets::instance_network::instance_network;
use crate::wasi::sockets::ip_name_lookup::resolve_addresses;
use crate::wasi::sockets::network::{
    ErrorCode as WasiError, IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress, Network,
};
use crate::wasi::sockets::tcp::TcpSocket;
use crate::wasi::sockets::tcp_create_socket::create_tcp_socket;
use crate::wire::{Deadline, Wire, wait};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A connected socket and its streams.
pub struct Connected {
    pub wire: Wire,
    pub socket: TcpSocket,
}

/// Connects to `host`:`port` before `deadline`: the first address that accepts wins; when none
/// does, the last address's error is the answer.
pub fn connect(host: &str, port: u16, deadline: Deadline) -> Result<Connected, ErrorCode> {
    let network = instance_network();
    let addresses = addresses_of(&network, host, deadline)?;
    let mut last = ErrorCode::NameUnresolvable;
    for address in addresses {
        match connect_to(&network, address, port, deadline) {
            Ok(connected) => return Ok(connected),
            Err(ErrorCode::TimedOut) => return Err(ErrorCode::TimedOut),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The addresses `host` stands for, in the resolver's order.
fn addresses_of(network: &Network, host: &str, deadline: Deadline) -> Result<Vec<IpAddress>, ErrorCode> {
    if let Some(ip) = ip_literal(host) {
        return Ok(vec![to_wasi(ip)]);
    }
    let lookup = resolve_addresses(network, host).map_err(|e| errors::from_lookup(host, e))?;
    let mut addresses = Vec::new();
    loop {
        match lookup.resolve_next_address() {
            Ok(Some(address)) => addresses.push(address),
            Ok(None) => break,
            Err(WasiError::WouldBlock) => wait(&lookup.subscribe(), deadline)?,
            Err(e) => return Err(errors::from_lookup(host, e)),
        }
    }
    if addresses.is_empty() {
        return Err(ErrorCode::NameUnresolvable);
    }
    Ok(addresses)
}

/// `host` as an IP address, when it is one (`[::1]` included).
pub fn ip_literal(host: &str) -> Option<IpAddr> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    bare.parse().ok()
}

fn connect_to(network: &Network, address: IpAddress, port: u16, deadline: Deadline) -> Result<Connected, ErrorCode> {
    let family = match address {
        IpAddress::Ipv4(_) => IpAddressFamily::Ipv4,
        IpAddress::Ipv6(_) => IpAddressFamily::Ipv6,
    };
    let socket = create_tcp_socket(family).map_err(errors::from_socket)?;
    socket.start_connect(network, with_port(address, port)).map_err(errors::from_socket)?;
    loop {
        match socket.finish_connect() {
            Ok((input, output)) => return Ok(Connected { wire: Wire { input, output }, socket }),
            Err(WasiError::WouldBlock) => wait(&socket.subscribe(), deadline)?,
            Err(e) => return Err(errors::from_socket(e)),
        }
    }
}

fn to_wasi(ip: IpAddr) -> IpAddress {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            IpAddress::Ipv4((a, b, c, d))
        }
        IpAddr::V6(v6) => {
            let [a, b, c, d, e, f, g, h] = v6.segments();
            IpAddress::Ipv6((a, b, c, d, e, f, g, h))
        }
    }
}

fn with_port(address: IpAddress, port: u16) -> IpSocketAddress {
    match address {
        IpAddress::Ipv4(address) => IpSocketAddress::Ipv4(Ipv4SocketAddress { port, address }),
        IpAddress::Ipv6(address) => {
            IpSocketAddress::Ipv6(Ipv6SocketAddress { port, flow_info: 0, address, scope_id: 0 })
        }
    }
}

/// A wasi socket address as the contract writes it (`127.0.0.1`, `::1`).
pub fn to_contract(address: IpSocketAddress) -> SocketAddress {
    match address {
        IpSocketAddress::Ipv4(v4) => {
            let (a, b, c, d) = v4.address;
            SocketAddress { address: Ipv4Addr::new(a, b, c, d).to_string(), port: v4.port }
        }
        IpSocketAddress::Ipv6(v6) => {
            let (a, b, c, d, e, f, g, h) = v6.address;
            SocketAddress { address: Ipv6Addr::new(a, b, c, d, e, f, g, h).to_string(), port: v6.port }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_skip_the_lookup() {
        assert_eq!(ip_literal("127.0.0.1"), Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(ip_literal("::1"), Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert_eq!(ip_literal("[::1]"), Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert_eq!(ip_literal("localhost"), None);
        assert_eq!(ip_literal("db.example"), None);
    }

    #[test]
    fn addresses_round_trip_between_std_wasi_and_the_contract() {
        for (ip, text) in [("10.1.2.3", "10.1.2.3"), ("::1", "::1"), ("fe80::1:2", "fe80::1:2")] {
            let address = with_port(to_wasi(ip.parse().unwrap()), 3306);
            let shown = to_contract(address);
            assert_eq!((shown.address.as_str(), shown.port), (text, 3306));
        }
    }
}
