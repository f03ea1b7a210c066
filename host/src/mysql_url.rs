//! `mysql://USER:PASSWORD@HOST:PORT/DB` URLs, as the CLI takes them, to connect options.
//!
//! User and password are percent-decoded (so `p%40ss` is `p@ss`); the port defaults to 3306.

use crate::bindings::{ConnectOptions, TlsMode};
use crate::net::allowlist::AllowEntry;
use url::{Host, Url};

/// The default MySQL port.
pub const DEFAULT_PORT: u16 = 3306;

/// A parsed `mysql://` URL.
#[derive(Debug, Clone, PartialEq)]
pub struct MysqlUrl {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: Option<String>,
}

impl MysqlUrl {
    pub fn parse(text: &str) -> Result<Self, String> {
        if !text.contains("://") {
            return Err(format!("malformed URL '{}': expected mysql://USER:PASSWORD@HOST:PORT/DB", redact(text)));
        }
        let url = Url::parse(text).map_err(|e| format!("malformed URL '{}': {e}", redact(text)))?;
        if url.scheme() != "mysql" && url.scheme() != "mariadb" {
            return Err(format!("URL scheme must be mysql://, not {}://", url.scheme()));
        }
        let host = match url.host() {
            Some(Host::Domain(name)) if !name.is_empty() => name.to_string(),
            Some(Host::Ipv4(ip)) => ip.to_string(),
            Some(Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err("the URL has no host (mysql://USER:PASSWORD@HOST:PORT/DB)".into()),
        };
        let user = decode(url.username())?;
        if user.is_empty() {
            return Err("the URL has no user (mysql://USER:PASSWORD@HOST:PORT/DB)".into());
        }
        let password = url.password().map(decode).transpose()?;
        let path = url.path().trim_start_matches('/');
        if path.contains('/') {
            return Err(format!("'{path}' is not a database name"));
        }
        let database = if path.is_empty() { None } else { Some(decode(path)?) };
        if let Some((key, _)) = url.query_pairs().next() {
            return Err(format!("unsupported URL parameter '{key}'"));
        }
        Ok(MysqlUrl { host, port: url.port().unwrap_or(DEFAULT_PORT), user, password, database })
    }

    /// Connect options for the guest, with the defaults: the host's timeouts, TLS when the
    /// server offers it (`preferred`, as the mysql client does), utf8mb4, the server's session
    /// defaults, and no cleartext password without TLS.
    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            password: self.password.clone(),
            database: self.database.clone(),
            connect_timeout_ms: None,
            read_timeout_ms: None,
            write_timeout_ms: None,
            tls_mode: TlsMode::Preferred,
            tls_ca_pem: None,
            server_public_key_pem: None,
            allow_cleartext_password: false,
            charset: None,
            collation: None,
            autocommit: None,
            sql_mode: None,
            init_command: None,
            max_allowed_packet: None,
            local_infile: Vec::new(),
        }
    }

    /// The allowlist entry that lets the guest reach this server and nothing else.
    pub fn allow_entry(&self) -> AllowEntry {
        AllowEntry::host_port(&self.host, self.port)
    }
}

fn decode(part: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(part)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| format!("'{part}' is not valid UTF-8 once percent-decoded"))
}

/// The URL with its password hidden, for error messages.
fn redact(text: &str) -> String {
    match (text.find("://"), text.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &text[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &text[..scheme_end + 3], &text[at..]),
                None => text.to_string(),
            }
        }
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every part is read, the password percent-decoded.
    #[test]
    fn full_url_parses() {
        let url = MysqlUrl::parse("mysql://app:p%40ss@db.local:3307/shop").unwrap();
        assert_eq!(
            url,
            MysqlUrl {
                host: "db.local".into(),
                port: 3307,
                user: "app".into(),
                password: Some("p@ss".into()),
                database: Some("shop".into())
            }
        );
    }

    /// Defaults: port 3306, no password, no database; IPv6 hosts lose their brackets.
    #[test]
    fn defaults_and_ipv6() {
        let url = MysqlUrl::parse("mysql://root@[::1]").unwrap();
        assert_eq!((url.host.as_str(), url.port, url.password, url.database), ("::1", 3306, None, None));
    }

    /// Malformed URLs are refused with a reason, and never echo the password.
    #[test]
    fn malformed_urls_are_refused() {
        for bad in [
            "127.0.0.1:3306",
            "http://u@h/db",
            "mysql://h/db",
            "mysql://u@h:99999/db",
            "mysql://u@h/a/b",
            "mysql://u@h/db?ssl=1",
        ] {
            assert!(MysqlUrl::parse(bad).is_err(), "{bad} should be refused");
        }
        let err = MysqlUrl::parse("mysql://u:secret@h:notaport/db").unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }
}
