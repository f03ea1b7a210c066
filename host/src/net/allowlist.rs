//! Which addresses a guest may connect to.
//!
//! An entry names a host (a name or an IP literal) and a port. A guest's request is vetted by
//! address, not by name: the host resolves the requested name itself and every resolved address
//! must be an address of an allowed entry on that port. So an allowed name cannot be used to
//! reach a forbidden address, and the addresses returned are the only ones connected to.

use crate::bindings::ErrorCode;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// One allowed `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowEntry {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for AllowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            _ => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

impl FromStr for AllowEntry {
    type Err = String;

    /// `host:port`, `1.2.3.4:port` or `[::1]:port`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, port) = s.rsplit_once(':').ok_or_else(|| format!("'{s}' is not host:port"))?;
        let port = port.parse().map_err(|_| format!("'{port}' in '{s}' is not a port number"))?;
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if host.is_empty() {
            return Err(format!("'{s}' has no host"));
        }
        Ok(AllowEntry { host: host.to_string(), port })
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
    /// A port no entry names is denied without resolving anything.
    pub async fn vet(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, ErrorCode> {
        let candidates: Vec<&AllowEntry> = self.entries.iter().filter(|e| e.port == port).collect();
        if candidates.is_empty() {
            return Err(ErrorCode::Denied);
        }
        let requested = resolve(host, port).await?;
        let mut allowed = Vec::new();
        for entry in candidates {
            // An allowed name that does not resolve right now allows nothing.
            allowed.extend(resolve(&entry.host, port).await.unwrap_or_default());
        }
        if requested.iter().all(|addr| allowed.contains(addr)) { Ok(requested) } else { Err(ErrorCode::Denied) }
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

    /// Entries parse from host:port, IPv4 and bracketed IPv6; garbage is refused.
    #[test]
    fn entries_parse_and_print() {
        assert_eq!("[::1]:3306".parse::<AllowEntry>().unwrap().to_string(), "[::1]:3306");
        assert_eq!("db:3306".parse::<AllowEntry>().unwrap(), AllowEntry { host: "db".into(), port: 3306 });
        assert!("db".parse::<AllowEntry>().is_err());
        assert!(":3306".parse::<AllowEntry>().is_err());
        assert!("db:http".parse::<AllowEntry>().is_err());
    }
}
