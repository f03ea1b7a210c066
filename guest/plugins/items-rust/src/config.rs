//! The plugin's configuration, read from the environment on every request: `DATABASE_URL`
//! (`mysql://USER:PASSWORD@HOST:PORT/DB`), `MYSQL_TLS_MODE` and `MYSQL_CA_PEM`.
//!
//! The URL is parsed by hand, the same way app.py parses it, so both plugins accept the same
//! URLs and give the same error messages.

use crate::leashed::mysql::types::{ConnectOptions, TlsMode};

/// The port when the URL gives none.
const DEFAULT_PORT: u16 = 3306;

const SHAPE: &str = "DATABASE_URL must look like mysql://USER:PASSWORD@HOST:PORT/DB";
const BAD_ESCAPE: &str = "DATABASE_URL has a bad percent-encoding";

/// Connect options from the environment, or the message of a 500.
pub fn connect_options() -> Result<ConnectOptions, String> {
    let url = std::env::var("DATABASE_URL").ok().filter(|url| !url.is_empty());
    let url = url.ok_or("DATABASE_URL is not set")?;
    let mut options = parse_url(&url)?;
    options.tls_mode = match std::env::var("MYSQL_TLS_MODE").unwrap_or_default().as_str() {
        "" | "preferred" => TlsMode::Preferred,
        "disabled" => TlsMode::Disabled,
        "required" => TlsMode::Required,
        "verify-ca" => TlsMode::VerifyCa,
        "verify-identity" => TlsMode::VerifyIdentity,
        _ => {
            return Err(
                "MYSQL_TLS_MODE must be one of disabled, preferred, required, verify-ca, verify-identity".into()
            );
        }
    };
    options.tls_ca_pem = std::env::var("MYSQL_CA_PEM").ok().filter(|pem| !pem.is_empty());
    Ok(options)
}

/// `mysql://USER[:PASSWORD]@HOST[:PORT][/DB]` (or `mariadb://`). User, password and database
/// are percent-decoded; a host in brackets is an IPv6 address.
fn parse_url(url: &str) -> Result<ConnectOptions, String> {
    let rest = url.strip_prefix("mysql://").or_else(|| url.strip_prefix("mariadb://")).ok_or(SHAPE)?;
    if rest.contains(['?', '#']) {
        return Err("DATABASE_URL has parameters, which are not supported".into());
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hostport) = authority.rsplit_once('@').ok_or("DATABASE_URL has no user")?;
    let (user, password) = match userinfo.split_once(':') {
        Some((user, password)) => (user, Some(password)),
        None => (userinfo, None),
    };
    let user = decode(user)?;
    if user.is_empty() {
        return Err("DATABASE_URL has no user".into());
    }
    let password = password.map(decode).transpose()?.filter(|password| !password.is_empty());
    let (host, port) = split_host_port(hostport)?;
    if host.is_empty() {
        return Err("DATABASE_URL has no host".into());
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(port) => parse_port(port).ok_or("DATABASE_URL has a bad port")?,
    };
    if path.contains('/') {
        return Err("DATABASE_URL has a bad database name".into());
    }
    let database = Some(decode(path)?).filter(|database| !database.is_empty());
    Ok(ConnectOptions {
        host: host.to_string(),
        port,
        user,
        password,
        database,
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
    })
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(hostport: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(bracketed) = hostport.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or(SHAPE)?;
        return match after {
            "" => Ok((host, None)),
            _ => after.strip_prefix(':').map(|port| (host, Some(port))).ok_or_else(|| SHAPE.to_string()),
        };
    }
    Ok(match hostport.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (hostport, None),
    })
}

/// 1 to 5 ASCII digits, 1–65535.
fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u16>().ok().filter(|&port| port != 0)
}

/// Percent-decoding: `%XX` is the byte XX, anything else stands for itself, and the result
/// must be UTF-8.
fn decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(BAD_ESCAPE)?;
            let hex = std::str::from_utf8(hex).map_err(|_| BAD_ESCAPE)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(BAD_ESCAPE.into());
            }
            out.push(u8::from_str_radix(hex, 16).map_err(|_| BAD_ESCAPE)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| BAD_ESCAPE.into())
}
