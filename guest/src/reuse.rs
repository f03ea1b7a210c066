//! Session reuse, the guest's part: the key that names a session, and the state a parked
//! session needs to be taken over by another instance.
//!
//! The key is a SHA-256 over everything that defines the session: where, as whom (password
//! included), which database, TLS, character set and collation, autocommit, sql_mode, the init
//! command, the timeouts and the packet limit. Two `open` calls share parked sessions only when
//! all of these match; the host adds the component's identity on top.

use crate::bindings::exports::leashed::mysql::types::{ConnectOptions, TlsMode};
use crate::proto::login::ServerInfo;
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
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

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
const STATE_VERSION: u8 = 1;

/// What another instance needs to take the session over: the server's greeting as negotiated.
pub fn encode_state(server: &ServerInfo) -> Vec<u8> {
    let mut state = vec![STATE_VERSION, u8::from(server.tls)];
    state.extend(server.capabilities.bits().to_le_bytes());
    state.extend(server.connection_id.to_le_bytes());
    state.extend((server.nonce.len() as u32).to_le_bytes());
    state.extend(&server.nonce);
    state.extend(server.version.as_bytes());
    state
}

/// The server info of a parked state; `None` if it is not one this guest wrote.
pub fn decode_state(state: &[u8]) -> Option<ServerInfo> {
    let (&version, rest) = state.split_first()?;
    if version != STATE_VERSION {
        return None;
    }
    let (&tls, rest) = rest.split_first()?;
    let (caps, rest) = rest.split_first_chunk::<4>()?;
    let (id, rest) = rest.split_first_chunk::<4>()?;
    let (nonce_len, rest) = rest.split_first_chunk::<4>()?;
    let nonce_len = u32::from_le_bytes(*nonce_len) as usize;
    let nonce = rest.get(..nonce_len)?.to_vec();
    let version = String::from_utf8(rest.get(nonce_len..)?.to_vec()).ok()?;
    Some(ServerInfo {
        version,
        connection_id: u32::from_le_bytes(*id),
        capabilities: CapabilityFlags::from_bits_truncate(u32::from_le_bytes(*caps)),
        nonce,
        tls: tls == 1,
    })
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
        let decoded = decode_state(&encode_state(&server)).expect("decodes");
        assert_eq!(
            (decoded.version, decoded.connection_id, decoded.capabilities, decoded.nonce, decoded.tls),
            (server.version, 42, server.capabilities, vec![1, 2, 3], true)
        );
        assert!(decode_state(&[9, 0]).is_none());
        assert!(decode_state(&[STATE_VERSION, 1, 0]).is_none());
    }
}
