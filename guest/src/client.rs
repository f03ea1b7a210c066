//! The exported `leashed:mysql/connection` resource: drives the protocol core over a link
//! (statements are in `statement.rs`, row streams in `row_stream.rs`).
//!
//! A connection is either open (it holds a [`Session`]) or closed. Any error after which the
//! wire is in an unknown state — I/O, protocol, auth — force-closes it on the spot; only a
//! server error (an ERR packet) or a call the client refused leaves it open. Statements share
//! their connection's session, so closing the connection closes them too.

use crate::bindings::exports::leashed::mysql::connection::{self, GuestConnection};
use crate::bindings::exports::leashed::mysql::types::{
    ConnectOptions, Error, LocalFile, QueryError, ResultSet, TlsMode, Value, Warning,
};
use crate::bindings::leashed::net::tcp::{ConnectOptions as NetOptions, TlsOptions, TlsVerify};
use crate::hygiene::Hygiene;
use crate::link::Link;
use crate::parking::Reuse;
use crate::proto::command::{com_init_db, com_ping, com_query, com_quit, com_reset_connection};
use crate::proto::login::{AuthPolicy, Credentials, Login, LoginStep, MAX_PACKET_SIZE, ServerInfo};
use crate::proto::query::{QueryResponse, QueryStep, parse_ok};
use crate::proto::statement::{PrepareResponse, PrepareStep, com_stmt_prepare};
use crate::proto::{ERR_HEADER, parse_err, protocol};
use crate::row_stream::MysqlRowStream;
use crate::statement::MysqlStatement;
use crate::statement_cache::{PreparedSql, StatementCache};
use mysql_common::constants::StatusFlags;
use mysql_common::packets::CommonOkPacket;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// The component's export root.
pub struct Component;

impl connection::Guest for Component {
    type Connection = MysqlConnection;
    type Statement = MysqlStatement;
    type RowStream = MysqlRowStream;
}

/// A logged-in link.
pub(crate) struct Session {
    pub(crate) link: Link,
    pub(crate) server: ServerInfo,
    /// How it authenticated, for COM_CHANGE_USER.
    pub(crate) policy: AuthPolicy,
    /// A row stream is reading a result: no other command may be sent until it is done.
    pub(crate) streaming: bool,
    /// What LOAD DATA LOCAL INFILE may send.
    local_files: Vec<LocalFile>,
    /// The server said a transaction is open (at the last OK it sent).
    pub(crate) in_transaction: bool,
    /// How to park this session for reuse when it is closed clean.
    pub(crate) reuse: Option<Reuse>,
    /// Whether it is provably as its setup left it (then parking skips the reset).
    pub(crate) hygiene: Hygiene,
    /// Its prepared statements, open and cached.
    pub(crate) statements: StatementCache,
}

impl Session {
    /// A session on `link`, just logged in (or just taken over: the caller adjusts).
    pub(crate) fn new(
        link: Link,
        server: ServerInfo,
        policy: AuthPolicy,
        local_files: Vec<LocalFile>,
        reuse: Option<Reuse>,
    ) -> Session {
        Session {
            link,
            server,
            policy,
            streaming: false,
            local_files,
            in_transaction: false,
            reuse,
            hygiene: Hygiene::fresh_login(),
            statements: StatementCache::default(),
        }
    }

    /// Sends a command whose answer is a single OK (or ERR).
    pub(crate) fn simple_command(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.link.begin_command();
        self.link.send(payload)?;
        self.read_ok()
    }

    /// Reads a command's one-packet reply: OK, or the server's error.
    pub(crate) fn read_ok(&mut self) -> Result<(), Error> {
        let packet = self.link.recv()?;
        if packet.first() == Some(&ERR_HEADER) {
            return Err(Error::Server(parse_err(&packet, self.server.capabilities)?));
        }
        let ok = parse_ok::<CommonOkPacket>(&packet, self.server.capabilities)?;
        self.in_transaction = ok.status_flags().contains(StatusFlags::SERVER_STATUS_IN_TRANS);
        self.hygiene.note_ok(
            ok.status_flags().contains(StatusFlags::SERVER_SESSION_STATE_CHANGED),
            ok.last_insert_id().unwrap_or(0),
            ok.warnings(),
        );
        Ok(())
    }

    /// Answers a LOCAL INFILE request: the file's contents in packets, then an empty packet.
    /// A file not in the options is sent as empty (nothing is loaded) and reported as `invalid`
    /// once the server has answered.
    pub(crate) fn send_local_file(&mut self, name: &str) -> Result<Option<Error>, Error> {
        /// Packets of file data stay well under any max_allowed_packet.
        const CHUNK: usize = 64 * 1024;
        let file = self.local_files.iter().find(|f| f.name == name);
        if let Some(file) = file {
            for chunk in file.contents.chunks(CHUNK) {
                self.link.send(chunk)?;
            }
        }
        self.link.send(&[])?;
        Ok(file.is_none().then(|| {
            Error::Invalid(format!(
                "LOAD DATA LOCAL INFILE asked for '{name}', which is not among the local-infile files"
            ))
        }))
    }

    /// Runs SQL with the text protocol and returns all its result sets.
    fn run(&mut self, sql: &str) -> Result<Vec<ResultSet>, QueryError> {
        self.hygiene.note_sql(sql);
        self.link.begin_command();
        self.link.send(&com_query(sql)).map_err(|error| QueryError { completed: Vec::new(), error })?;
        let response = QueryResponse::new(self.server.capabilities);
        read_results(self, response)
    }
}

/// A connection's session, shared with the statements it prepared; `None` once closed.
pub(crate) type SharedSession = Rc<RefCell<Option<Session>>>;

/// The guest side of an exported `connection` handle.
pub struct MysqlConnection {
    session: SharedSession,
}

/// Errors after which the connection cannot be trusted any more.
fn is_fatal(error: &Error) -> bool {
    !matches!(error, Error::Server(_) | Error::Invalid(_))
}

/// Runs `op` on the open session; force-closes it if `op` fails fatally. A closed session, or
/// one busy with a row stream, is refused through `refuse`.
pub(crate) fn with_session<T, E>(
    slot: &RefCell<Option<Session>>,
    refuse: impl FnOnce(Error) -> E,
    error_of: impl Fn(&E) -> &Error,
    op: impl FnOnce(&mut Session) -> Result<T, E>,
) -> Result<T, E> {
    if slot.borrow().as_ref().is_some_and(|s| s.streaming) {
        return Err(refuse(Error::Invalid(
            "a row stream is open on this connection: read it to the end or close it first".into(),
        )));
    }
    with_session_even_streaming(slot, refuse, error_of, op)
}

/// [`with_session`] for the row stream itself, which owns the busy session.
pub(crate) fn with_session_even_streaming<T, E>(
    slot: &RefCell<Option<Session>>,
    refuse: impl FnOnce(Error) -> E,
    error_of: impl Fn(&E) -> &Error,
    op: impl FnOnce(&mut Session) -> Result<T, E>,
) -> Result<T, E> {
    let mut slot = slot.borrow_mut();
    let Some(session) = slot.as_mut() else {
        return Err(refuse(Error::Closed));
    };
    let result = op(session);
    if let Err(e) = &result {
        if is_fatal(error_of(e)) {
            slot.take().expect("checked above").link.force_close();
        } else {
            // An ERR carries no status: what the statement changed before it failed is unknown.
            session.hygiene.note_unknown();
        }
    }
    result
}

/// Reads a query-shaped response (COM_QUERY or COM_STMT_EXECUTE) to its end.
pub(crate) fn read_results(session: &mut Session, mut response: QueryResponse) -> Result<Vec<ResultSet>, QueryError> {
    let fail = |error| QueryError { completed: Vec::new(), error };
    let mut refused_file = None;
    let mut packet = Vec::new();
    loop {
        session.link.recv_into(&mut packet).map_err(fail)?;
        let step = response.step(&packet)?;
        if let QueryStep::Done(sets) = &step {
            session.in_transaction = response.in_transaction();
            for set in sets {
                session.hygiene.note_ok(response.state_changed(), set.last_insert_id, set.warnings);
            }
        }
        match step {
            QueryStep::Done(sets) => match refused_file {
                Some(error) => return Err(QueryError { completed: sets, error }),
                None => return Ok(sets),
            },
            QueryStep::SendFile(name) => refused_file = session.send_local_file(&name).map_err(fail)?,
            QueryStep::NeedPacket | QueryStep::Columns | QueryStep::Row(_) => {}
        }
    }
}

impl MysqlConnection {
    fn with_session<T, E>(
        &self,
        refuse: impl FnOnce(Error) -> E,
        error_of: impl Fn(&E) -> &Error,
        op: impl FnOnce(&mut Session) -> Result<T, E>,
    ) -> Result<T, E> {
        with_session(&self.session, refuse, error_of, op)
    }

    /// Ends the session: parked for reuse if it is clean and the host takes it (`parking.rs`),
    /// otherwise COM_QUIT. Errors while saying goodbye do not matter: the link is released
    /// either way.
    fn quit(&self) {
        let Some(mut session) = self.session.borrow_mut().take() else { return };
        if !session.park() {
            session.link.begin_command();
            let _ = session.link.send(&com_quit());
        }
        session.link.force_close();
    }

    /// Hands out a statement for `sql`: a cached one, or one the server prepares now.
    fn prepared(&self, sql: String) -> Result<(PreparedSql, u32), Error> {
        self.with_session(
            |e| e,
            |e| e,
            |session| {
                session.hygiene.note_sql(&sql);
                let generation = session.statements.generation();
                if let Some(cached) = session.statements.check_out(&sql) {
                    return Ok((cached, generation));
                }
                session.link.begin_command();
                session.link.send(&com_stmt_prepare(&sql))?;
                let mut response = PrepareResponse::new(session.server.capabilities);
                loop {
                    let packet = session.link.recv()?;
                    if let PrepareStep::Done(prepared) = response.step(&packet)? {
                        session.statements.opened();
                        let prepared =
                            PreparedSql { sql, id: prepared.id, params: prepared.params, columns: prepared.columns };
                        return Ok((prepared, generation));
                    }
                }
            },
        )
    }

    /// The server dropped the session's state and statements (a reset or a change of user):
    /// nothing is cached any more, and tracking is off until the next reset for reuse.
    fn forget_session_state(session: &mut Session) {
        session.statements.forget_all();
        session.hygiene.note_unknown();
    }
}

impl Drop for MysqlConnection {
    fn drop(&mut self) {
        self.quit();
    }
}

impl GuestConnection for MysqlConnection {
    fn open(options: ConnectOptions) -> Result<connection::Connection, Error> {
        let net = NetOptions {
            connect_timeout_ms: options.connect_timeout_ms,
            read_timeout_ms: options.read_timeout_ms,
            write_timeout_ms: options.write_timeout_ms,
            nodelay: true,
        };
        // Refuse unusable settings before a socket is lent.
        let setup = session_setup(&options)?;
        let reuse = Reuse::for_options(&options, &setup);
        let max_packet = options.max_allowed_packet.unwrap_or(MAX_PACKET_SIZE);
        let policy = AuthPolicy {
            local_infile: !options.local_infile.is_empty(),
            tls: options.tls_mode,
            server_key_pem: options.server_public_key_pem.as_ref().map(|pem| pem.as_bytes().to_vec()),
            allow_cleartext: options.allow_cleartext_password,
            max_packet,
        };
        if let Some(session) = reuse.as_ref().and_then(|reuse| Session::resume(reuse, &policy, &options.local_infile)) {
            return Ok(connection::Connection::new(MysqlConnection { session: Rc::new(RefCell::new(Some(session))) }));
        }
        let mut link = Link::connect(&options.host, options.port, &net)?;
        link.set_max_packet(max_packet as usize);
        let creds = Credentials {
            user: &options.user,
            password: options.password.as_deref(),
            database: options.database.as_deref(),
        };
        let tls = TlsOptions {
            server_name: options.host.clone(),
            verify: match options.tls_mode {
                TlsMode::VerifyCa => TlsVerify::VerifyCa,
                TlsMode::VerifyIdentity => TlsVerify::VerifyIdentity,
                _ => TlsVerify::NoVerify,
            },
            ca_pem: options.tls_ca_pem.clone(),
        };
        let server = match login(&mut link, &creds, policy.clone(), &tls) {
            Ok(server) => server,
            Err(error) => {
                link.force_close();
                return Err(error);
            }
        };
        let mut session = Session::new(link, server, policy, options.local_infile, reuse);
        if let Some(sql) = &setup
            && let Err(failure) = session.run(sql)
        {
            session.link.force_close();
            return Err(failure.error);
        }
        Ok(connection::Connection::new(MysqlConnection { session: Rc::new(RefCell::new(Some(session))) }))
    }

    fn query(&self, sql: String) -> Result<Vec<ResultSet>, QueryError> {
        self.with_session(
            |error| QueryError { completed: Vec::new(), error },
            |e| &e.error,
            |session| session.run(&sql),
        )
    }

    fn query_stream(&self, sql: String) -> Result<connection::RowStream, Error> {
        let shared = self.session.clone();
        let stream = self.with_session(
            |e| e,
            |e| e,
            |session| {
                // A stream's end is not checked for state changes.
                session.hygiene.note_unknown();
                MysqlRowStream::start(shared, session, &sql)
            },
        )?;
        Ok(connection::RowStream::new(stream))
    }

    fn prepare(&self, sql: String) -> Result<connection::Statement, Error> {
        let (prepared, generation) = self.prepared(sql)?;
        Ok(connection::Statement::new(MysqlStatement {
            session: self.session.clone(),
            long_data: RefCell::new(vec![false; usize::from(prepared.params)]),
            prepared: RefCell::new(Some(prepared)),
            generation,
            open: Cell::new(true),
        }))
    }

    fn ping(&self) -> Result<(), Error> {
        self.with_session(|e| e, |e| e, |session| session.simple_command(&com_ping()))
    }

    fn server_version(&self) -> String {
        self.session.borrow().as_ref().map(|s| s.server.version.clone()).unwrap_or_default()
    }

    fn connection_id(&self) -> u32 {
        self.session.borrow().as_ref().map_or(0, |s| s.server.connection_id)
    }

    fn uses_tls(&self) -> bool {
        self.session.borrow().as_ref().is_some_and(|s| s.server.tls)
    }

    fn select_db(&self, database: String) -> Result<(), Error> {
        self.with_session(|e| e, |e| e, |session| session.simple_command(&com_init_db(&database)))
    }

    fn reset(&self) -> Result<(), Error> {
        self.with_session(
            |e| e,
            |e| e,
            |session| {
                Self::forget_session_state(session);
                session.simple_command(&com_reset_connection())
            },
        )
    }

    fn change_user(&self, user: String, password: Option<String>, database: Option<String>) -> Result<(), Error> {
        self.with_session(
            |e| e,
            |e| e,
            |session| {
                // The session is no longer the one its key names.
                session.reuse = None;
                Self::forget_session_state(session);
                let creds = Credentials { user: &user, password: password.as_deref(), database: database.as_deref() };
                let (login, payload) = Login::change_user(&session.server, &creds, session.policy.clone())?;
                session.link.begin_command();
                session.link.send(&payload)?;
                authenticate(&mut session.link, login)?;
                Ok(())
            },
        )
    }

    fn warnings(&self) -> Result<Vec<Warning>, Error> {
        self.with_session(
            |e| e,
            |e| e,
            |session| {
                let sets = session.run("SHOW WARNINGS").map_err(|failure| failure.error)?;
                let rows = sets.into_iter().next().map(|set| set.rows).unwrap_or_default();
                rows.into_iter().map(warning).collect()
            },
        )
    }

    fn close(&self) -> Result<(), Error> {
        self.quit();
        Ok(())
    }
}

/// One SHOW WARNINGS row: Level, Code, Message.
fn warning(row: Vec<Value>) -> Result<Warning, Error> {
    let text = |value: &Value| match value {
        Value::Text(t) => Some(t.clone()),
        _ => None,
    };
    let code = match row.get(1) {
        Some(Value::Uint(code)) => u16::try_from(*code).ok(),
        Some(Value::Int(code)) => u16::try_from(*code).ok(),
        _ => None,
    };
    match (row.first().and_then(text), code, row.get(2).and_then(text)) {
        (Some(level), Some(code), Some(message)) => Ok(Warning { level, code, message }),
        _ => Err(protocol(format!("unexpected SHOW WARNINGS row: {row:?}"))),
    }
}

/// Runs the login exchange over the link, upgrading it to TLS on the way if the login asks.
fn login(link: &mut Link, creds: &Credentials<'_>, policy: AuthPolicy, tls: &TlsOptions) -> Result<ServerInfo, Error> {
    let greeting = link.recv()?;
    let start = Login::start(&greeting, creds, policy)?;
    if let Some(ssl_request) = &start.ssl_request {
        link.send(ssl_request)?;
        link.start_tls(tls)?;
    }
    link.send(&start.response)?;
    authenticate(link, start.login)
}

/// Feeds the server's packets to a login (or change-user) until it is done.
fn authenticate(link: &mut Link, mut login: Login) -> Result<ServerInfo, Error> {
    loop {
        let packet = link.recv()?;
        match login.step(&packet)? {
            LoginStep::Send(data) => link.send(&data)?,
            LoginStep::Wait => {}
            LoginStep::Done(server) => return Ok(server),
        }
    }
}

/// The SQL that sets the session up after login, from the options; `None` if there is none.
fn session_setup(options: &ConnectOptions) -> Result<Option<String>, Error> {
    let name = |what: &str, value: &str| {
        if !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            Ok(value.to_string())
        } else {
            Err(Error::Invalid(format!("{what} '{value}' is not a valid name")))
        }
    };
    let mut statements = Vec::new();
    if options.charset.is_some() || options.collation.is_some() {
        let charset = name("charset", options.charset.as_deref().unwrap_or("utf8mb4"))?;
        match &options.collation {
            Some(collation) => {
                statements.push(format!("SET NAMES {charset} COLLATE {}", name("collation", collation)?))
            }
            None => statements.push(format!("SET NAMES {charset}")),
        }
    }
    if let Some(on) = options.autocommit {
        statements.push(format!("SET autocommit = {}", u8::from(on)));
    }
    if let Some(mode) = &options.sql_mode {
        statements.push(format!("SET SESSION sql_mode = '{}'", mode.replace('\\', "\\\\").replace('\'', "''")));
    }
    if let Some(init) = &options.init_command {
        statements.push(init.clone());
    }
    Ok((!statements.is_empty()).then(|| statements.join("; ")))
}
