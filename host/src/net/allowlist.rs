//! Which addresses a guest may connect to, and which names the host may look up for it.
//!
//! An entry names a host (a name, an IP address, or a CIDR network) and a port or port range:
//! `db:3306`, `10.0.0.0/8:3306`, `[::1]:3306-3310`. A request is matched in its own form: an IP
//! literal against the address and network entries on its port, a name against the name entries
//! on its port (ASCII case-insensitively, one trailing dot ignored). Only a name an entry spells
//! out is ever looked up: that entry's text, once per connect, within the lookup timeout; what it
//! resolves to is allowed, by that entry. A malformed or over-long name, a name no entry on the
//! port names, and an IP literal are never looked up, so the resolver is neither a way out for a
//! guest nor an oracle; and a name entry does not allow its addresses as IP literals.

use crate::bindings::ErrorCode;
use crate::net::resolve::{Resolve, SystemResolver};
use ipnet::IpNet;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The longest host name a guest may ask for, in bytes, not counting one trailing dot (DNS's
/// limit). A longer one is denied before it is compared, stored or looked up.
pub const MAX_NAME_BYTES: usize = 253;

/// The longest a lookup may take before the name counts as unresolvable.
pub const DEFAULT_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

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
#[derive(Debug, Clone)]
pub struct Allowlist {
    entries: Vec<AllowEntry>,
    resolver: Arc<dyn Resolve>,
    lookup_timeout: Duration,
}

impl Default for Allowlist {
    fn default() -> Self {
        Allowlist::new([])
    }
}

impl Allowlist {
    /// These entries, looked up by the system resolver within [`DEFAULT_LOOKUP_TIMEOUT`].
    pub fn new(entries: impl IntoIterator<Item = AllowEntry>) -> Self {
        Allowlist {
            entries: entries.into_iter().collect(),
            resolver: Arc::new(SystemResolver),
            lookup_timeout: DEFAULT_LOOKUP_TIMEOUT,
        }
    }

    /// The same entries, looked up by `resolver` (tests plug in a stub here).
    pub fn with_resolver(self, resolver: Arc<dyn Resolve>) -> Self {
        Allowlist { resolver, ..self }
    }

    /// The same entries, with lookups that take longer than `timeout` counted as unresolvable.
    pub fn with_lookup_timeout(self, timeout: Duration) -> Self {
        Allowlist { lookup_timeout: timeout, ..self }
    }

    pub fn entries(&self) -> &[AllowEntry] {
        &self.entries
    }

    pub fn lookup_timeout(&self) -> Duration {
        self.lookup_timeout
    }

    /// The addresses to connect to for `host:port`, if an entry on `port` allows `host`.
    ///
    /// `denied`: a malformed or over-long host, or one no entry on the port allows; nothing is
    /// looked up. `name-unresolvable`: an allowed name with no addresses within the timeout.
    pub async fn vet(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, ErrorCode> {
        let requested = Requested::parse(host).ok_or(ErrorCode::Denied)?;
        let mut on_port = self.entries.iter().filter(|e| e.ports.contains(&port));
        match requested {
            Requested::Ip(ip) => {
                if on_port.any(|e| matches!(&e.target, AllowTarget::Net(net) if net.contains(&ip))) {
                    Ok(vec![SocketAddr::new(ip, port)])
                } else {
                    Err(ErrorCode::Denied)
                }
            }
            Requested::Name(name) => {
                let listed = on_port
                    .find_map(|e| match &e.target {
                        AllowTarget::Name(listed) if same_name(listed, name) => Some(listed),
                        _ => None,
                    })
                    .ok_or(ErrorCode::Denied)?;
                self.look_up(listed, port).await
            }
        }
    }

    /// Looks up a name an entry spells out, on `port`, within the lookup timeout.
    async fn look_up(&self, listed: &str, port: u16) -> Result<Vec<SocketAddr>, ErrorCode> {
        match tokio::time::timeout(self.lookup_timeout, self.resolver.lookup(listed, port)).await {
            Ok(Ok(addrs)) if !addrs.is_empty() => {
                Ok(addrs.into_iter().map(|a| SocketAddr::new(a.ip(), port)).collect())
            }
            _ => Err(ErrorCode::NameUnresolvable),
        }
    }
}

/// A host as a guest asked for it, once it is known to be well formed.
enum Requested<'a> {
    Ip(IpAddr),
    /// A DNS name without its trailing dot.
    Name(&'a str),
}

impl<'a> Requested<'a> {
    /// An IPv4 literal, an IPv6 literal with or without brackets, or a DNS name of at most
    /// [`MAX_NAME_BYTES`]; `None` for anything else. The length is checked first, so a huge
    /// name costs nothing more.
    fn parse(host: &'a str) -> Option<Self> {
        let name = host.strip_suffix('.').unwrap_or(host);
        if name.len() > MAX_NAME_BYTES {
            return None;
        }
        if let Some(bare) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            return bare.parse::<Ipv6Addr>().ok().map(|ip| Requested::Ip(ip.into()));
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Some(Requested::Ip(ip));
        }
        let label_ok = |label: &str| {
            (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        name.split('.').all(label_ok).then_some(Requested::Name(name))
    }
}

/// Whether an entry's name and a requested one (already without its trailing dot) are the same
/// DNS name.
fn same_name(listed: &str, requested: &str) -> bool {
    listed.strip_suffix('.').unwrap_or(listed).eq_ignore_ascii_case(requested)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::resolve::Lookup;
    use std::sync::Mutex;

    fn list(entries: &[&str]) -> Allowlist {
        Allowlist::new(entries.iter().map(|e| e.parse().unwrap()))
    }

    /// A resolver that records every name it is asked about and answers each with `answer`
    /// (on port 9, which `vet` must replace), after `delay`.
    #[derive(Debug, Default)]
    struct Stub {
        answer: Vec<IpAddr>,
        delay: Duration,
        asked: Mutex<Vec<String>>,
    }

    impl Stub {
        fn answering(answer: &[&str]) -> Arc<Stub> {
            Arc::new(Stub { answer: answer.iter().map(|a| a.parse().unwrap()).collect(), ..Stub::default() })
        }

        fn asked(&self) -> Vec<String> {
            self.asked.lock().unwrap().clone()
        }
    }

    impl Resolve for Stub {
        fn lookup<'a>(&'a self, name: &'a str, _port: u16) -> Lookup<'a> {
            self.asked.lock().unwrap().push(name.to_string());
            Box::pin(async move {
                tokio::time::sleep(self.delay).await;
                Ok(self.answer.iter().map(|ip| SocketAddr::new(*ip, 9)).collect())
            })
        }
    }

    fn stubbed(entries: &[&str], stub: &Arc<Stub>) -> Allowlist {
        list(entries).with_resolver(stub.clone())
    }

    /// A name of exactly `len` bytes, in labels of 63.
    fn name_of(len: usize) -> String {
        let name: String = (0..len).map(|i| if i % 64 == 63 { '.' } else { 'a' }).collect();
        assert!(!name.ends_with('.'), "{len} bytes would end in a dot");
        name
    }

    /// The exact address and port are allowed; another port or address is denied.
    #[tokio::test]
    async fn only_the_listed_address_and_port_pass() {
        let allow = list(&["127.0.0.1:3306"]);
        assert_eq!(allow.vet("127.0.0.1", 3306).await, Ok(vec!["127.0.0.1:3306".parse().unwrap()]));
        assert_eq!(allow.vet("127.0.0.1", 3307).await, Err(ErrorCode::Denied));
        assert_eq!(allow.vet("127.0.0.2", 3306).await, Err(ErrorCode::Denied));
    }

    /// A name no entry on the port names is denied, and nobody is asked about it: not the
    /// name from issue 17, not a listed name on another port.
    #[tokio::test]
    async fn unlisted_name_is_denied_without_a_lookup() {
        let stub = Stub::answering(&["127.0.0.1"]);
        let allow = stubbed(&["127.0.0.1:3307", "db:3306", "10.0.0.0/8:3307"], &stub);
        assert_eq!(allow.vet("leak-the-secret-abc123.invalid", 3307).await, Err(ErrorCode::Denied));
        assert_eq!(allow.vet("db", 3307).await, Err(ErrorCode::Denied));
        assert_eq!(allow.vet("db.internal", 3306).await, Err(ErrorCode::Denied));
        assert_eq!(allow.vet("localhost", 3307).await, Err(ErrorCode::Denied));
        assert_eq!(stub.asked(), Vec::<String>::new());
    }

    /// An allowed name is looked up once per vet, even when two entries name it, and its
    /// addresses come back on the requested port.
    #[tokio::test]
    async fn allowed_name_is_looked_up_once_per_vet() {
        let stub = Stub::answering(&["10.1.2.3", "fd00::7"]);
        let allow = stubbed(&["db:3306", "DB:3300-3310", "10.0.0.0/8:3306"], &stub);
        let expected: Vec<SocketAddr> = vec!["10.1.2.3:3306".parse().unwrap(), "[fd00::7]:3306".parse().unwrap()];
        assert_eq!(allow.vet("db", 3306).await, Ok(expected.clone()));
        assert_eq!(stub.asked(), ["db"]);
        assert_eq!(allow.vet("db", 3306).await, Ok(expected));
        assert_eq!(stub.asked(), ["db", "db"]);
    }

    /// Names past 253 bytes (one trailing dot aside) are denied before any lookup, even one an
    /// entry names; 253 bytes, with or without the dot, is still a name.
    #[tokio::test]
    async fn overlong_names_are_denied_without_a_lookup() {
        let (longest, too_long, huge) = (name_of(253), name_of(254), "a".repeat(1 << 20));
        assert_eq!((longest.len(), too_long.len()), (253, 254));
        let stub = Stub::answering(&["10.0.0.1"]);
        let allow = stubbed(&[&format!("{longest}:1"), &format!("{too_long}:1"), &format!("{huge}:1")], &stub);
        assert_eq!(allow.vet(&too_long, 1).await, Err(ErrorCode::Denied));
        assert_eq!(allow.vet(&huge, 1).await, Err(ErrorCode::Denied));
        assert_eq!(allow.vet(&format!("{huge}."), 1).await, Err(ErrorCode::Denied));
        assert_eq!(stub.asked(), Vec::<String>::new());
        assert!(allow.vet(&longest, 1).await.is_ok());
        assert!(allow.vet(&format!("{longest}."), 1).await.is_ok());
        assert_eq!(stub.asked().len(), 2);
    }

    /// Empty labels, labels past 63 bytes and characters outside letters, digits, `-` and `_`
    /// are denied before any lookup, even when an entry spells the same text.
    #[tokio::test]
    async fn malformed_names_are_denied_without_a_lookup() {
        let long_label = "a".repeat(64);
        let bad =
            ["", ".", "..", "a..b", ".db", "a b", "db%eth0", "dé", "db\0", "[db]", "[127.0.0.1]", "*.db", &long_label];
        let stub = Stub::answering(&["10.0.0.1"]);
        let entries: Vec<String> = bad.iter().filter(|b| !b.is_empty()).map(|b| format!("{b}:1")).collect();
        let allow = stubbed(&entries.iter().map(String::as_str).collect::<Vec<_>>(), &stub);
        for host in bad {
            assert_eq!(allow.vet(host, 1).await, Err(ErrorCode::Denied), "{host:?}");
        }
        assert_eq!(stub.asked(), Vec::<String>::new());
        assert!(stubbed(&["my_db-1.x:1"], &stub).vet("my_db-1.x", 1).await.is_ok());
    }

    /// IP literals are vetted against address entries without a lookup; a name entry does not
    /// allow what it resolves to as a literal.
    #[tokio::test]
    async fn ip_literals_need_no_lookup() {
        let stub = Stub::answering(&["10.0.0.5"]);
        let allow = stubbed(&["127.0.0.1:3306", "[::1]:3306", "db:3306"], &stub);
        assert_eq!(allow.vet("127.0.0.1", 3306).await, Ok(vec!["127.0.0.1:3306".parse().unwrap()]));
        assert_eq!(allow.vet("::1", 3306).await, Ok(vec!["[::1]:3306".parse().unwrap()]));
        assert_eq!(allow.vet("[::1]", 3306).await, Ok(vec!["[::1]:3306".parse().unwrap()]));
        assert_eq!(allow.vet("10.0.0.5", 3306).await, Err(ErrorCode::Denied));
        assert_eq!(allow.vet("::ffff:127.0.0.1", 3306).await, Err(ErrorCode::Denied));
        assert_eq!(stub.asked(), Vec::<String>::new());
    }

    /// Names match ASCII case-insensitively with a trailing dot ignored on either side, and
    /// what is looked up is the entry's own text, not the guest's spelling.
    #[tokio::test]
    async fn names_match_ignoring_case_and_a_trailing_dot() {
        let stub = Stub::answering(&["10.0.0.1"]);
        let allow = stubbed(&["Db.Example:1", "cache.example.:2"], &stub);
        for host in ["db.example", "DB.EXAMPLE.", "dB.eXaMpLe"] {
            assert!(allow.vet(host, 1).await.is_ok(), "{host}");
        }
        assert!(allow.vet("cache.example", 2).await.is_ok());
        assert!(allow.vet("CACHE.example.", 2).await.is_ok());
        assert_eq!(allow.vet("db.example..", 1).await, Err(ErrorCode::Denied));
        assert_eq!(stub.asked(), ["Db.Example", "Db.Example", "Db.Example", "cache.example.", "cache.example."]);
    }

    /// A lookup slower than the timeout, or one that finds nothing, is `name-unresolvable`.
    #[tokio::test]
    async fn slow_or_empty_lookups_are_name_unresolvable() {
        let slow = Arc::new(Stub {
            answer: vec!["10.0.0.1".parse().unwrap()],
            delay: Duration::from_secs(60),
            ..Stub::default()
        });
        let allow = stubbed(&["db:1"], &slow).with_lookup_timeout(Duration::from_millis(20));
        let started = std::time::Instant::now();
        assert_eq!(allow.vet("db", 1).await, Err(ErrorCode::NameUnresolvable));
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!(slow.asked(), ["db"]);

        let empty = Stub::answering(&[]);
        assert_eq!(stubbed(&["db:1"], &empty).vet("db", 1).await, Err(ErrorCode::NameUnresolvable));
        assert_eq!(Allowlist::default().lookup_timeout(), DEFAULT_LOOKUP_TIMEOUT);
    }

    /// With the system resolver, `localhost` passes only when an entry names it: allowing
    /// 127.0.0.1 does not allow `localhost`.
    #[tokio::test]
    async fn localhost_passes_only_when_an_entry_names_it() {
        assert_eq!(list(&["127.0.0.1:1"]).vet("localhost", 1).await, Err(ErrorCode::Denied));
        let addrs = list(&["localhost:1"]).vet("localhost", 1).await.unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 1), "{addrs:?}");
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
