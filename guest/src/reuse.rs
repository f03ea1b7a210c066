//! Session reuse, the guest's part: the key that names a session, and the state a parked
//! session needs to be taken over by another instance (how a session is parked and taken over
//! is in `parking.rs`).
//!
//! The key is a SHA-256 over everything that defines the session: where, as whom (password
//! included), which database, TLS, character set and collation, autocommit, sql_mode, the init
//! command, the timeouts and the packet limit. Two `open` calls share parked sessions only when
//! all of these match; the host adds the component's identity on top.

use crate::bindings::exports::leashed::mysql::types::{ConnectOptions, TlsMode};
use crate::proto::login::ServerInfo;
use crate::statement_cache::{self, PreparedSql};
use mysql_common::constants::CapabilityFlags;
use sha2::{Digest, Sha256};

/// The session key of `options`, as hex.
pub fn session_key(options: &ConnectOptions) -> String {
    let mut hash = Sha256::new();
    let mut field = |name: &str, value: Option<&[u8]>| {
        // Length-prefixed, so no two different option sets hash the same bytes.
        hash.update(name.as_bytes());
        match value {
            Some(bytes) => {
                hash.update([1]);
                hash.update((bytes.len() as u64).to_le_bytes());
                hash.update(bytes);
            }
            None => hash.update([0]),
        }
    };
    let number = |n: Option<u32>| n.map(|n| n.to_le_bytes());
    field("host", Some(options.host.as_bytes()));
    field("port", Some(&options.port.to_le_bytes()));
    field("user", Some(options.user.as_bytes()));
    field("password", options.password.as_deref().map(str::as_bytes));
    field("database", options.database.as_deref().map(str::as_bytes));
    field("tls-mode", Some(&[tls_mode_code(options.tls_mode)]));
    field("tls-ca", options.tls_ca_pem.as_deref().map(str::as_bytes));
    field("server-key", options.server_public_key_pem.as_deref().map(str::as_bytes));
    field("cleartext", Some(&[u8::from(options.allow_cleartext_password)]));
    field("charset", options.charset.as_deref().map(str::as_bytes));
    field("collation", options.collation.as_deref().map(str::as_bytes));
    field("autocommit", options.autocommit.map(|on| [u8::from(on)]).as_ref().map(|b| &b[..]));
    field("sql-mode", options.sql_mode.as_deref().map(str::as_bytes));
    field("init-command", options.init_command.as_deref().map(str::as_bytes));
    field("connect-timeout", number(options.connect_timeout_ms).as_ref().map(|b| &b[..]));
    field("read-timeout", number(options.read_timeout_ms).as_ref().map(|b| &b[..]));
    field("write-timeout", number(options.write_timeout_ms).as_ref().map(|b| &b[..]));
    field("max-packet", number(options.max_allowed_packet).as_ref().map(|b| &b[..]));
    let mut key = String::with_capacity(64);
    for byte in hash.finalize() {
        key.push(char::from(HEX[usize::from(byte >> 4)]));
        key.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    key
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn tls_mode_code(mode: TlsMode) -> u8 {
    match mode {
        TlsMode::Disabled => 0,
        TlsMode::Preferred => 1,
        TlsMode::Required => 2,
        TlsMode::VerifyCa => 3,
        TlsMode::VerifyIdentity => 4,
    }
}

/// The format version of the parked state.
const STATE_VERSION: u8 = 3;

/// The most a parked state may take (the host's cap is larger); cached statements that do not
/// fit are closed before parking.
pub const STATE_BUDGET: usize = 32 * 1024;

/// A session parked this recently is taken over without a ping: the host has just checked that
/// the server neither closed it nor sent anything, and a server rarely goes away within a
/// second. (Connection pools use the same bypass window, e.g. HikariCP's 500 ms.)
const TRUSTED_FOR_MS: u64 = 1_000;

/// A parked session, as another instance takes it over.
pub struct ParkedState {
    /// The server's greeting as negotiated.
    pub server: ServerInfo,
    /// When it was parked, in milliseconds since the Unix epoch (the wall clock: instances do
    /// not share a monotonic one).
    pub parked_at_ms: u64,
    /// The statements it has prepared and cached (none when it was reset before parking).
    pub statements: Vec<PreparedSql>,
}

impl ParkedState {
    /// Whether it was parked so recently that it needs no ping before use.
    pub fn needs_no_ping(&self, now_ms: u64) -> bool {
        now_ms >= self.parked_at_ms && now_ms - self.parked_at_ms < TRUSTED_FOR_MS
    }
}

/// Milliseconds since the Unix epoch, by the wall clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// What another instance needs to take the session over: the server's greeting as negotiated,
/// when it was parked, and the statements it keeps prepared. Returns the state and the
/// statements that did not fit in [`STATE_BUDGET`] (to be closed before parking).
pub fn encode_state(
    server: &ServerInfo,
    parked_at_ms: u64,
    statements: Vec<PreparedSql>,
) -> (Vec<u8>, Vec<PreparedSql>) {
    let mut state = vec![STATE_VERSION, u8::from(server.tls)];
    state.extend(parked_at_ms.to_le_bytes());
    state.extend(server.capabilities.bits().to_le_bytes());
    state.extend(server.connection_id.to_le_bytes());
    state.extend((server.nonce.len() as u32).to_le_bytes());
    state.extend(&server.nonce);
    state.extend((server.version.len() as u32).to_le_bytes());
    state.extend(server.version.as_bytes());
    let budget = STATE_BUDGET.saturating_sub(state.len());
    let left_out = statement_cache::encode(statements, budget, &mut state);
    (state, left_out)
}

/// The parked state; `None` if it is not one this guest wrote.
pub fn decode_state(state: &[u8]) -> Option<ParkedState> {
    let (&version, rest) = state.split_first()?;
    if version != STATE_VERSION {
        return None;
    }
    let (&tls, rest) = rest.split_first()?;
    let (parked_at, rest) = rest.split_first_chunk::<8>()?;
    let (caps, rest) = rest.split_first_chunk::<4>()?;
    let (id, rest) = rest.split_first_chunk::<4>()?;
    let (nonce_len, rest) = rest.split_first_chunk::<4>()?;
    let nonce_len = u32::from_le_bytes(*nonce_len) as usize;
    let nonce = rest.get(..nonce_len)?.to_vec();
    let (version_len, rest) = rest.get(nonce_len..)?.split_first_chunk::<4>()?;
    let version_len = u32::from_le_bytes(*version_len) as usize;
    let version = String::from_utf8(rest.get(..version_len)?.to_vec()).ok()?;
    let statements = statement_cache::decode(rest.get(version_len..)?).ok()?;
    let server = ServerInfo {
        version,
        connection_id: u32::from_le_bytes(*id),
        capabilities: CapabilityFlags::from_bits_truncate(u32::from_le_bytes(*caps)),
        nonce,
        tls: tls == 1,
    };
    Some(ParkedState { server, parked_at_ms: u64::from_le_bytes(*parked_at), statements })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> ConnectOptions {
        ConnectOptions {
            host: "db".into(),
            port: 3306,
            user: "app".into(),
            password: Some("secret".into()),
            database: Some("shop".into()),
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

    #[test]
    fn every_part_of_the_session_changes_the_key() {
        let base = session_key(&options());
        assert_eq!(base, session_key(&options()), "the key is stable");
        assert_eq!(base.len(), 64);
        let variants = [
            ConnectOptions { password: Some("other".into()), ..options() },
            ConnectOptions { user: "admin".into(), ..options() },
            ConnectOptions { database: None, ..options() },
            ConnectOptions { port: 3307, ..options() },
            ConnectOptions { tls_mode: TlsMode::Disabled, ..options() },
            ConnectOptions { sql_mode: Some("ANSI".into()), ..options() },
            ConnectOptions { init_command: Some("SET @a = 1".into()), ..options() },
            ConnectOptions { charset: Some("latin1".into()), ..options() },
            ConnectOptions { autocommit: Some(false), ..options() },
        ];
        for variant in variants {
            assert_ne!(session_key(&variant), base);
        }
    }

    #[test]
    fn the_state_round_trips_and_refuses_strangers() {
        let server = ServerInfo {
            version: "10.11.19-MariaDB".into(),
            connection_id: 42,
            capabilities: CapabilityFlags::CLIENT_PROTOCOL_41 | CapabilityFlags::CLIENT_SSL,
            nonce: vec![1, 2, 3],
            tls: true,
        };
        let (state, left_out) = encode_state(&server, 1_700_000_000_000, Vec::new());
        assert!(left_out.is_empty());
        let parked = decode_state(&state).expect("decodes");
        assert_eq!(parked.parked_at_ms, 1_700_000_000_000);
        assert!(parked.statements.is_empty());
        let decoded = parked.server;
        assert_eq!(
            (decoded.version, decoded.connection_id, decoded.capabilities, decoded.nonce, decoded.tls),
            (server.version, 42, server.capabilities, vec![1, 2, 3], true)
        );
        assert!(decode_state(&[9, 0]).is_none());
        assert!(decode_state(&[STATE_VERSION, 1, 0]).is_none());
    }

    /// A session parked less than a second ago is trusted without a ping; an older one, or one
    /// whose time is in the future (a clock stepped back), is pinged.
    #[test]
    fn only_a_recent_park_skips_the_ping() {
        let server = ServerInfo {
            version: String::new(),
            connection_id: 1,
            capabilities: CapabilityFlags::empty(),
            nonce: Vec::new(),
            tls: false,
        };
        let parked = ParkedState { server, parked_at_ms: 10_000, statements: Vec::new() };
        assert!(parked.needs_no_ping(10_000));
        assert!(parked.needs_no_ping(10_999));
        assert!(!parked.needs_no_ping(11_000));
        assert!(!parked.needs_no_ping(9_999));
    }

    #[test]
    fn the_key_is_lowercase_hex_of_the_digest() {
        let key = session_key(&options());
        assert!(key.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{key}");
    }
}
