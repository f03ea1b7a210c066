//! The login exchange as a step function: the server's greeting in, the handshake response out,
//! then one step per server packet (auth switch, more data, OK, ERR) until the session is open.
//!
//! Capability negotiation lives here too. The auth plugins themselves are mysql_common's
//! challenge/response state machines; this module only feeds them and refuses the ones a client
//! must not use silently (cleartext and the pre-4.1 hash).

use super::{EOF_HEADER, ERR_HEADER, MORE_DATA_HEADER, OK_HEADER, parse_err, protocol};
use crate::bindings::exports::leashed::mysql::types::{Error, ServerError};
use mysql_common::auth::plugins::{AuthProc, ChallengeResponsePlugin, Context, Response};
use mysql_common::constants::CapabilityFlags;
use mysql_common::io::ParseBuf;
use mysql_common::packets::{AuthMoreData, AuthPlugin, AuthSwitchRequest, HandshakePacket, HandshakeResponse};
use mysql_common::proto::MySerialize;

/// The largest packet this client announces it accepts (the server's max_allowed_packet still
/// applies to what it sends).
pub const MAX_PACKET_SIZE: u32 = 64 << 20;

/// Error code the mysql client uses when it cannot use an authentication plugin.
const CR_AUTH_PLUGIN_CANNOT_LOAD: u16 = 2059;

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
}

/// Who logs in, and where.
pub struct Credentials<'a> {
    pub user: &'a str,
    pub password: Option<&'a str>,
    pub database: Option<&'a str>,
}

/// What the server told us about itself, and what was negotiated.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub version: String,
    pub connection_id: u32,
    pub capabilities: CapabilityFlags,
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
}

/// What mysql_common's plugins may know about this connection.
struct AuthContext<'a> {
    password: &'a [u8],
    scramble: &'a [u8],
}

impl Context for AuthContext<'_> {
    fn pass(&self) -> &[u8] {
        self.password
    }
    fn is_ipc_transport(&self) -> bool {
        false
    }
    fn is_tls_transport(&self) -> bool {
        false
    }
    fn scramble(&self) -> &[u8] {
        self.scramble
    }
    fn server_key_pem(&self) -> Option<&[u8]> {
        None
    }
}

impl Login {
    /// Reads the server's greeting and returns the login state with the handshake response to
    /// send.
    pub fn start(greeting: &[u8], creds: &Credentials<'_>) -> Result<(Login, Vec<u8>), Error> {
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
        let caps = wanted_capabilities() & server_caps;
        let password = creds.password.unwrap_or("").as_bytes().to_vec();
        let scramble = hello.nonce();

        // The greeting names the server's default plugin. If we cannot use it, answer as
        // mysql_native_password: the server then switches to the account's plugin.
        let (plugin_name, mut plugin) = match usable_plugin(hello.auth_plugin()) {
            Some(found) => found,
            None => (AuthPlugin::MysqlNativePassword, AuthPlugin::MysqlNativePassword.init().expect("built in")),
        };
        let first = run_plugin(&mut plugin, &password, &scramble, &scramble, plugin_name.as_bytes())?;

        let version = hello.server_version_parsed().or(hello.maria_db_server_version_parsed()).unwrap_or((5, 5, 3));
        let response = HandshakeResponse::new(
            Some(first.unwrap_or_default()),
            version,
            Some(creds.user.as_bytes()),
            creds.database.map(str::as_bytes),
            Some(plugin_name.clone()),
            caps,
            None,
            MAX_PACKET_SIZE,
        );
        let info = ServerInfo {
            version: hello.server_version_str().into_owned(),
            connection_id: hello.connection_id(),
            capabilities: response.capabilities(),
        };
        let mut payload = Vec::new();
        response.serialize(&mut payload);
        Ok((Login { password, scramble, plugin, info }, payload))
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
                let Some((_, plugin)) = usable_plugin(Some(name.clone())) else {
                    return Err(unusable_plugin(name.as_bytes()));
                };
                self.plugin = plugin;
                self.scramble = switch.plugin_data().to_vec();
                let data =
                    run_plugin(&mut self.plugin, &self.password, &self.scramble, &self.scramble, name.as_bytes())?;
                Ok(LoginStep::Send(data.unwrap_or_default()))
            }
            Some(&MORE_DATA_HEADER) => {
                let more: AuthMoreData<'_> =
                    ParseBuf(packet).parse(()).map_err(|e| protocol(format!("malformed auth data: {e}")))?;
                let name = b"current plugin";
                match run_plugin(&mut self.plugin, &self.password, &self.scramble, more.data(), name)? {
                    Some(data) => Ok(LoginStep::Send(data)),
                    None => Ok(LoginStep::Wait),
                }
            }
            Some(other) => Err(protocol(format!("unexpected packet 0x{other:02x} during login"))),
            None => Err(protocol("empty packet during login")),
        }
    }
}

/// The plugins this client will run. Cleartext and the pre-4.1 hash are never used silently.
fn usable_plugin(plugin: Option<AuthPlugin<'_>>) -> Option<(AuthPlugin<'static>, AuthProc)> {
    let plugin = plugin?.into_owned();
    match plugin {
        AuthPlugin::MysqlNativePassword
        | AuthPlugin::Ed25519
        | AuthPlugin::CachingSha2Password
        | AuthPlugin::Sha256Password => {
            let proc = plugin.init().ok()?;
            Some((plugin, proc))
        }
        _ => None,
    }
}

fn unusable_plugin(name: &[u8]) -> Error {
    Error::Auth(ServerError {
        code: CR_AUTH_PLUGIN_CANNOT_LOAD,
        sql_state: "HY000".into(),
        message: format!(
            "Authentication plugin '{}' cannot be loaded: not supported by the leashed client",
            String::from_utf8_lossy(name)
        ),
    })
}

/// Runs one challenge through the plugin and returns the bytes to send, if any.
fn run_plugin(
    plugin: &mut AuthProc,
    password: &[u8],
    scramble: &[u8],
    challenge: &[u8],
    name: &[u8],
) -> Result<Option<Vec<u8>>, Error> {
    let ctx = AuthContext { password, scramble };
    match plugin.run(ctx, challenge) {
        Ok(Response::Next { packet } | Response::Last { packet }) => Ok(packet),
        Err(e) => Err(Error::Auth(ServerError {
            code: CR_AUTH_PLUGIN_CANNOT_LOAD,
            sql_state: "HY000".into(),
            message: format!("authentication plugin '{}' failed: {e:?}", String::from_utf8_lossy(name)),
        })),
    }
}
