//! Which addresses a guest may connect to.
//!
//! An entry names a host (a name, an IP address, or a CIDR network) and a port or port range:
//! `db:3306`, `10.0.0.0/8:3306`, `[::1]:3306-3310`. A guest's request is vetted by address, not
//! by name: the host resolves the requested name itself, and every resolved address must be
//! allowed by an entry on that port. So an allowed name cannot be used to reach a forbidden
//! address, and the addresses returned are the only ones connected to.

use crate::bindings::ErrorCode;
use ipnet::IpNet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::str::FromStr;

/// What an entry allows on its ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowTarget {
    /// Whatever this name resolves to when a connect is vetted.
    Name(String),
    /// Every address in this network (a single address is a /32 or /128).
    Net(IpNet),
}

/// One allowed destination: a target and a port range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowEntry {
    pub target: AllowTarget,
    pub ports: RangeInclusive<u16>,
}

impl AllowEntry {
    /// Exactly `host` (a name or an IP address) on `port`.
    pub fn host_port(host: &str, port: u16) -> Self {
        let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let target = match bare.parse::<IpAddr>() {
            Ok(ip) => AllowTarget::Net(IpNet::from(ip)),
            Err(_) => AllowTarget::Name(bare.to_string()),
        };
        AllowEntry { target, ports: port..=port }
    }
}

impl fmt::Display for AllowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            AllowTarget::Name(name) => write!(f, "{name}")?,
            AllowTarget::Net(net) if net.prefix_len() == net.max_prefix_len() => match net.addr() {
                IpAddr::V6(ip) => write!(f, "[{ip}]")?,
                ip => write!(f, "{ip}")?,
            },
            AllowTarget::Net(IpNet::V6(net)) => write!(f, "[{net}]")?,
            AllowTarget::Net(net) => write!(f, "{net}")?,
        }
        if self.ports.start() == self.ports.end() {
            write!(f, ":{}", self.ports.start())
        } else {
            write!(f, ":{}-{}", self.ports.start(), self.ports.end())
        }
    }
}

impl FromStr for AllowEntry {
    type Err = String;

    /// `host:port`, `1.2.3.4:port`, `[::1]:port`, `10.0.0.0/8:port`, `[fd00::/8]:port`, with
    /// `port` a number or a range `low-high`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, ports) = s.rsplit_once(':').ok_or_else(|| format!("'{s}' is not HOST:PORT"))?;
        let port = |p: &str| p.parse::<u16>().map_err(|_| format!("'{p}' in '{s}' is not a port number"));
        let ports = match ports.split_once('-') {
            Some((low, high)) => {
                let (low, high) = (port(low)?, port(high)?);
                if low > high {
                    return Err(format!("port range {low}-{high} in '{s}' is empty"));
                }
                low..=high
            }
            None => {
                let p = port(ports)?;
                p..=p
            }
        };
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if host.is_empty() {
            return Err(format!("'{s}' has no host"));
        }
        let target = if host.contains('/') {
            AllowTarget::Net(host.parse().map_err(|_| format!("'{host}' in '{s}' is not a CIDR network"))?)
        } else {
            match host.parse::<IpAddr>() {
                Ok(ip) => AllowTarget::Net(IpNet::from(ip)),
                Err(_) => AllowTarget::Name(host.to_string()),
            }
        };
        Ok(AllowEntry { target, ports })
    }
}

/// The set of allowed destinations. Empty means nothing is allowed.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    entries: Vec<AllowEntry>,
}

impl Allowlist {
    pub fn new(entries: impl IntoIterator<Item = AllowEntry>) -> Self {
        Allowlist { entries: entries.into_iter().collect() }
    }

    pub fn entries(&self) -> &[AllowEntry] {
        &self.entries
    }

    /// Resolves `host:port` and returns its addresses if every one of them is allowed.
    ///
    /// A port no entry covers is denied without resolving anything.
    pub async fn vet(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, ErrorCode> {
        let candidates: Vec<&AllowEntry> = self.entries.iter().filter(|e| e.ports.contains(&port)).collect();
        if candidates.is_empty() {
            return Err(ErrorCode::Denied);
        }
        let requested = resolve(host, port).await?;
        let mut named = Vec::new();
        for entry in &candidates {
            if let AllowTarget::Name(name) = &entry.target {
                // An allowed name that does not resolve right now allows nothing.
                named.extend(resolve(name, port).await.unwrap_or_default());
            }
        }
        let allowed = |addr: &SocketAddr| {
            named.contains(addr)
                || candidates.iter().any(|e| matches!(&e.target, AllowTarget::Net(net) if net.contains(&addr.ip())))
        };
        if requested.iter().all(allowed) { Ok(requested) } else { Err(ErrorCode::Denied) }
    }
}

/// Resolves a name (or parses an IP literal) to socket addresses.
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, ErrorCode> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    match tokio::net::lookup_host((bare, port)).await {
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() { Err(ErrorCode::NameUnresolvable) } else { Ok(addrs) }
        }
        Err(_) => Err(ErrorCode::NameUnresolvable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> Allowlist {
        Allowlist::new(entries.iter().map(|e| e.parse().unwrap()))
    }

    /// The exact address and port are allowed; another port or address is denied.
    #[tokio::test]
    async fn only_the_listed_address_and_port_pass() {
        let allow = list(&["127.0.0.1:3306"]);
        assert_eq!(allow.vet("127.0.0.1", 3306).await, Ok(vec!["127.0.0.1:3306".parse().unwrap()]));
        assert_eq!(allow.vet("127.0.0.1", 3307).await, Err(ErrorCode::Denied));
        assert_eq!(allow.vet("127.0.0.2", 3306).await, Err(ErrorCode::Denied));
    }

    /// A name is vetted by what it resolves to: `localhost` reaches 127.0.0.1, so allowing
    /// 127.0.0.1 alone does not allow `localhost` if it also resolves to ::1.
    #[tokio::test]
    async fn names_are_vetted_by_their_addresses() {
        let resolved = resolve("localhost", 1).await.unwrap();
        let only_v4 = list(&["127.0.0.1:1"]);
        let verdict = only_v4.vet("localhost", 1).await;
        if resolved.iter().all(|a| a.ip() == IpAddr::from([127, 0, 0, 1])) {
            assert!(verdict.is_ok());
        } else {
            assert_eq!(verdict, Err(ErrorCode::Denied));
        }
        assert!(list(&["localhost:1"]).vet("localhost", 1).await.is_ok());
    }

    /// Entries parse from host:port, IPv4, bracketed IPv6, CIDR and port ranges, and print back
    /// the same; garbage is refused.
    #[test]
    fn entries_parse_and_print() {
        for text in ["[::1]:3306", "db:3306", "127.0.0.1:3306-3310", "10.0.0.0/8:3306", "[fd00::/8]:1-65535"] {
            assert_eq!(text.parse::<AllowEntry>().unwrap().to_string(), text);
        }
        assert_eq!("db:3306".parse::<AllowEntry>().unwrap(), AllowEntry::host_port("db", 3306));
        for bad in ["db", ":3306", "db:http", "db:10-5", "10.0.0.0/33:1", "db:1-x"] {
            assert!(bad.parse::<AllowEntry>().is_err(), "{bad}");
        }
    }

    /// A CIDR entry allows every address in the network, on its port range only.
    #[tokio::test]
    async fn cidr_and_port_ranges() {
        let allow = list(&["127.0.0.0/8:3306-3310"]);
        assert!(allow.vet("127.1.2.3", 3308).await.is_ok());
        assert_eq!(allow.vet("127.1.2.3", 3311).await, Err(ErrorCode::Denied));
        assert_eq!(allow.vet("10.0.0.1", 3306).await, Err(ErrorCode::Denied));
    }
}
