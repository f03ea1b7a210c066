//! The login exchange as a step function: the server's greeting in, the handshake response out,
//! then one step per server packet (auth switch, more data, OK, ERR) until the session is open.
//!
//! Capability negotiation and the TLS decision live here too: with TLS, `start` also returns the
//! SSLRequest packet to send before the shell upgrades the socket. COM_CHANGE_USER re-runs the
//! same step function. The auth plugins themselves are mysql_common's challenge/response state
//! machines; this module only feeds them (telling them whether the link is TLS and which server
//! key to trust) and refuses the ones a client must not use silently: cleartext without TLS
//! unless allowed, and the pre-4.1 hash.

use super::{EOF_HEADER, ERR_HEADER, MORE_DATA_HEADER, OK_HEADER, parse_err, protocol};
use crate::bindings::exports::leashed::mysql::types::{Error, ServerError, TlsMode};
use crate::bindings::leashed::net::tcp::ErrorCode;
use mysql_common::auth::plugins::{AuthProc, ChallengeResponsePlugin, Context, Response};
use mysql_common::constants::CapabilityFlags;
use mysql_common::io::ParseBuf;
use mysql_common::packets::{
    AuthMoreData, AuthPlugin, AuthSwitchRequest, ComChangeUser, ComChangeUserMoreData, HandshakePacket,
    HandshakeResponse, SslRequest,
};
use mysql_common::proto::MySerialize;

/// The largest packet this client announces it accepts (the server's max_allowed_packet still
/// applies to what it sends).
pub const MAX_PACKET_SIZE: u32 = 64 << 20;

/// Error code the mysql client uses when it cannot use an authentication plugin.
const CR_AUTH_PLUGIN_CANNOT_LOAD: u16 = 2059;

/// utf8mb4_general_ci: the collation the handshake announces (`SET NAMES` changes it later).
const UTF8MB4_GENERAL_CI: u8 = 45;

/// What the client asks for; the server's capabilities are intersected with it.
fn wanted_capabilities() -> CapabilityFlags {
    CapabilityFlags::CLIENT_PROTOCOL_41
        | CapabilityFlags::CLIENT_SECURE_CONNECTION
        | CapabilityFlags::CLIENT_PLUGIN_AUTH
        | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
        | CapabilityFlags::CLIENT_LONG_PASSWORD
        | CapabilityFlags::CLIENT_LONG_FLAG
        | CapabilityFlags::CLIENT_TRANSACTIONS
        | CapabilityFlags::CLIENT_MULTI_STATEMENTS
        | CapabilityFlags::CLIENT_MULTI_RESULTS
        | CapabilityFlags::CLIENT_PS_MULTI_RESULTS
        | CapabilityFlags::CLIENT_DEPRECATE_EOF
        | CapabilityFlags::CLIENT_CONNECT_WITH_DB
        // OKs say when the session's state changed (session reuse skips a reset without).
        | CapabilityFlags::CLIENT_SESSION_TRACK
}

/// Who logs in, and where.
pub struct Credentials<'a> {
    pub user: &'a str,
    pub password: Option<&'a str>,
    pub database: Option<&'a str>,
}

/// How the login may negotiate and authenticate.
#[derive(Debug, Clone)]
pub struct AuthPolicy {
    /// Offer LOCAL INFILE (CLIENT_LOCAL_FILES).
    pub local_infile: bool,
    pub tls: TlsMode,
    /// The server's RSA public key (PEM) to encrypt a full password with, instead of asking.
    pub server_key_pem: Option<Vec<u8>>,
    /// mysql_clear_password without TLS.
    pub allow_cleartext: bool,
    pub max_packet: u32,
}

/// What the server told us about itself, and what was negotiated.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub version: String,
    pub connection_id: u32,
    pub capabilities: CapabilityFlags,
    /// The greeting's nonce, which COM_CHANGE_USER's first answer is computed from.
    pub nonce: Vec<u8>,
    /// Whether the link is TLS.
    pub tls: bool,
}

/// The opening of a login: what to send, in order.
pub struct Start {
    pub login: Login,
    /// With TLS: the SSLRequest, to send before upgrading the socket.
    pub ssl_request: Option<Vec<u8>>,
    /// The handshake response, sent after the upgrade when there is one.
    pub response: Vec<u8>,
}

/// The next thing the I/O shell must do during login.
#[derive(Debug)]
pub enum LoginStep {
    /// Send this payload (same sequence, no reset), then feed the server's answer to `step`.
    Send(Vec<u8>),
    /// Send nothing; feed the server's next packet to `step`.
    Wait,
    /// Logged in.
    Done(ServerInfo),
}

/// A login in progress.
pub struct Login {
    password: Vec<u8>,
    scramble: Vec<u8>,
    plugin: AuthProc,
    info: ServerInfo,
    policy: AuthPolicy,
}

/// What mysql_common's plugins may know about this connection.
struct AuthContext<'a> {
    password: &'a [u8],
    scramble: &'a [u8],
    tls: bool,
    server_key_pem: Option<&'a [u8]>,
}

impl Context for AuthContext<'_> {
    fn pass(&self) -> &[u8] {
        self.password
    }
    fn is_ipc_transport(&self) -> bool {
        false
    }
    fn is_tls_transport(&self) -> bool {
        self.tls
    }
    fn scramble(&self) -> &[u8] {
        self.scramble
    }
    fn server_key_pem(&self) -> Option<&[u8]> {
        self.server_key_pem
    }
}

impl Login {
    /// Reads the server's greeting and returns the login state with the packets to send.
    pub fn start(greeting: &[u8], creds: &Credentials<'_>, policy: AuthPolicy) -> Result<Start, Error> {
        if greeting.first() == Some(&ERR_HEADER) {
            // e.g. "Too many connections" or "Host is blocked", sent before any negotiation.
            return Err(Error::Server(parse_err(greeting, CapabilityFlags::empty())?));
        }
        let hello: HandshakePacket<'_> =
            ParseBuf(greeting).parse(()).map_err(|e| protocol(format!("malformed server greeting: {e}")))?;
        if hello.protocol_version() != 10 {
            return Err(protocol(format!("unsupported handshake protocol version {}", hello.protocol_version())));
        }
        let server_caps = hello.capabilities();
        if !server_caps.contains(CapabilityFlags::CLIENT_PROTOCOL_41) {
            return Err(protocol("the server does not speak protocol 4.1"));
        }
        let tls = use_tls(policy.tls, server_caps.contains(CapabilityFlags::CLIENT_SSL))?;
        let mut caps = wanted_capabilities() & server_caps;
        if tls {
            caps |= CapabilityFlags::CLIENT_SSL;
        }
        if policy.local_infile {
            caps |= CapabilityFlags::CLIENT_LOCAL_FILES & server_caps;
        }
        let password = creds.password.unwrap_or("").as_bytes().to_vec();
        let nonce = hello.nonce();

        // The greeting names the server's default plugin. If we cannot use it, answer as
        // mysql_native_password: the server then switches to the account's plugin.
        let (plugin_name, mut plugin) = match usable_plugin(hello.auth_plugin(), tls, &policy) {
            Ok(found) => found,
            Err(_) => (AuthPlugin::MysqlNativePassword, AuthPlugin::MysqlNativePassword.init().expect("built in")),
        };
        let ctx = AuthContext {
            password: &password,
            scramble: &nonce,
            tls,
            server_key_pem: policy.server_key_pem.as_deref(),
        };
        let first = run_plugin(&mut plugin, ctx, &nonce, plugin_name.as_bytes())?;

        let version = leading_version(hello.server_version_ref()).unwrap_or((5, 5, 3));
        let response = HandshakeResponse::new(
            Some(first.unwrap_or_default()),
            version,
            Some(creds.user.as_bytes()),
            creds.database.map(str::as_bytes),
            Some(plugin_name.clone()),
            caps,
            None,
            policy.max_packet,
        );
        let ssl_request = tls.then(|| {
            let mut payload = Vec::new();
            SslRequest::new(response.capabilities(), policy.max_packet, UTF8MB4_GENERAL_CI).serialize(&mut payload);
            payload
        });
        let info = ServerInfo {
            version: hello.server_version_str().into_owned(),
            connection_id: hello.connection_id(),
            capabilities: response.capabilities(),
            nonce: nonce.clone(),
            tls,
        };
        let mut payload = Vec::new();
        response.serialize(&mut payload);
        let login = Login { password, scramble: nonce, plugin, info, policy };
        Ok(Start { login, ssl_request, response: payload })
    }

    /// COM_CHANGE_USER on a logged-in session: the login state and the command to send. The
    /// first answer is computed from the greeting's nonce, as a login's is; the server may then
    /// switch plugins.
    pub fn change_user(
        info: &ServerInfo,
        creds: &Credentials<'_>,
        policy: AuthPolicy,
    ) -> Result<(Login, Vec<u8>), Error> {
        let password = creds.password.unwrap_or("").as_bytes().to_vec();
        let plugin_name = AuthPlugin::MysqlNativePassword;
        let mut plugin = plugin_name.init().expect("built in");
        let ctx = AuthContext { password: &password, scramble: &info.nonce, tls: info.tls, server_key_pem: None };
        let first = run_plugin(&mut plugin, ctx, &info.nonce, plugin_name.as_bytes())?.unwrap_or_default();
        let mut payload = Vec::new();
        ComChangeUser::new()
            .with_user(Some(creds.user.as_bytes()))
            .with_database(creds.database.map(str::as_bytes))
            .with_auth_plugin_data(Some(&first[..]))
            .with_more_data(Some(
                ComChangeUserMoreData::new(u16::from(UTF8MB4_GENERAL_CI)).with_auth_plugin(Some(plugin_name)),
            ))
            .serialize(&mut payload);
        let login = Login { password, scramble: info.nonce.clone(), plugin, info: info.clone(), policy };
        Ok((login, payload))
    }

    /// Feeds the server's next packet during login.
    pub fn step(&mut self, packet: &[u8]) -> Result<LoginStep, Error> {
        match packet.first() {
            Some(&OK_HEADER) => Ok(LoginStep::Done(self.info.clone())),
            Some(&ERR_HEADER) => Err(Error::Auth(parse_err(packet, self.info.capabilities)?)),
            Some(&EOF_HEADER) => {
                let switch: AuthSwitchRequest<'_> =
                    ParseBuf(packet).parse(()).map_err(|e| protocol(format!("malformed auth switch request: {e}")))?;
                let name = switch.auth_plugin().into_owned();
                let (_, plugin) = usable_plugin(Some(name.clone()), self.info.tls, &self.policy)?;
                self.plugin = plugin;
                self.scramble = switch.plugin_data().to_vec();
                let ctx = AuthContext {
                    password: &self.password,
                    scramble: &self.scramble,
                    tls: self.info.tls,
                    server_key_pem: self.policy.server_key_pem.as_deref(),
                };
                let data = run_plugin(&mut self.plugin, ctx, &self.scramble, name.as_bytes())?;
                Ok(LoginStep::Send(data.unwrap_or_default()))
            }
            Some(&MORE_DATA_HEADER) => {
                let more: AuthMoreData<'_> =
                    ParseBuf(packet).parse(()).map_err(|e| protocol(format!("malformed auth data: {e}")))?;
                let name = b"current plugin";
                let ctx = AuthContext {
                    password: &self.password,
                    scramble: &self.scramble,
                    tls: self.info.tls,
                    server_key_pem: self.policy.server_key_pem.as_deref(),
                };
                match run_plugin(&mut self.plugin, ctx, more.data(), name)? {
                    Some(data) => Ok(LoginStep::Send(data)),
                    None => Ok(LoginStep::Wait),
                }
            }
            Some(other) => Err(protocol(format!("unexpected packet 0x{other:02x} during login"))),
            None => Err(protocol("empty packet during login")),
        }
    }
}

/// Whether to ask for TLS, given the mode and whether the server offers it.
fn use_tls(mode: TlsMode, offered: bool) -> Result<bool, Error> {
    match (mode, offered) {
        (TlsMode::Disabled, _) => Ok(false),
        (TlsMode::Preferred, offered) => Ok(offered),
        (_, true) => Ok(true),
        (_, false) => Err(Error::Io(ErrorCode::Tls(format!(
            "the server does not offer TLS, and the tls-mode is {}",
            match mode {
                TlsMode::Required => "required",
                TlsMode::VerifyCa => "verify-ca",
                _ => "verify-identity",
            }
        )))),
    }
}

/// The plugins this client will run: the hashing ones always; mysql_clear_password only on TLS
/// or when allowed; the pre-4.1 hash never.
fn usable_plugin(
    plugin: Option<AuthPlugin<'_>>,
    tls: bool,
    policy: &AuthPolicy,
) -> Result<(AuthPlugin<'static>, AuthProc), Error> {
    let Some(plugin) = plugin.map(AuthPlugin::into_owned) else {
        return Err(unusable_plugin(b"(none)", "the server named no plugin"));
    };
    match plugin {
        AuthPlugin::MysqlNativePassword
        | AuthPlugin::Ed25519
        | AuthPlugin::CachingSha2Password
        | AuthPlugin::Sha256Password => {}
        AuthPlugin::MysqlClearPassword if tls || policy.allow_cleartext => {}
        AuthPlugin::MysqlClearPassword => {
            return Err(unusable_plugin(
                plugin.as_bytes(),
                "it sends the password in clear; use TLS, or allow-cleartext-password",
            ));
        }
        _ => return Err(unusable_plugin(plugin.as_bytes(), "not supported by the leashed client")),
    }
    let proc = plugin.init().map_err(|e| unusable_plugin(plugin.as_bytes(), &format!("{e:?}")))?;
    Ok((plugin, proc))
}

fn unusable_plugin(name: &[u8], why: &str) -> Error {
    Error::Auth(ServerError {
        code: CR_AUTH_PLUGIN_CANNOT_LOAD,
        sql_state: "HY000".into(),
        message: format!("Authentication plugin '{}' cannot be loaded: {why}", String::from_utf8_lossy(name)),
    })
}

/// Runs one challenge through the plugin and returns the bytes to send, if any.
fn run_plugin(
    plugin: &mut AuthProc,
    ctx: AuthContext<'_>,
    challenge: &[u8],
    name: &[u8],
) -> Result<Option<Vec<u8>>, Error> {
    match plugin.run(ctx, challenge) {
        Ok(Response::Next { packet } | Response::Last { packet }) => Ok(packet),
        Err(e) => Err(Error::Auth(ServerError {
            code: CR_AUTH_PLUGIN_CANNOT_LOAD,
            sql_state: "HY000".into(),
            message: format!("authentication plugin '{}' failed: {e:?}", String::from_utf8_lossy(name)),
        })),
    }
}

/// The `major.minor.patch` a server version string starts with ("5.5.5-10.11.6-MariaDB" gives
/// 5.5.5, as mysql_common's own parser does). Parsed by hand: mysql_common's parser compiles a
/// regex on first use, which cost each fresh instance about 1 ms, half of its first request.
fn leading_version(version: &[u8]) -> Option<(u16, u16, u16)> {
    let mut parts = [0u16; 3];
    let mut rest = version;
    for (i, part) in parts.iter_mut().enumerate() {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 3 {
            return None;
        }
        *part = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
        rest = &rest[digits..];
        if i < 2 {
            rest = rest.strip_prefix(b".")?;
        }
    }
    Some((parts[0], parts[1], parts[2]))
}

#[cfg(test)]
mod tests {
    use super::leading_version;

    #[test]
    fn server_versions_parse_as_mysql_common_parses_them() {
        assert_eq!(leading_version(b"5.5.5-10.11.6-MariaDB-0+deb12u1"), Some((5, 5, 5)));
        assert_eq!(leading_version(b"8.0.36"), Some((8, 0, 36)));
        assert_eq!(leading_version(b"11.4.2-MariaDB-log"), Some((11, 4, 2)));
        assert_eq!(leading_version(b"5.7"), None);
        assert_eq!(leading_version(b"v8.0.1"), None);
        assert_eq!(leading_version(b""), None);
    }
}
