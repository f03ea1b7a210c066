//! The exported `leashed:mysql/connection` resource: drives the protocol core over a link.
//!
//! A connection is either open (it holds a [`Session`]) or closed. Any error after which the
//! wire is in an unknown state — I/O, protocol, auth — force-closes it on the spot; only a
//! server error (an ERR packet) leaves it open.

use crate::bindings::exports::leashed::mysql::connection::{self, GuestConnection};
use crate::bindings::exports::leashed::mysql::types::{ConnectOptions, Error, QueryError, ResultSet};
use crate::bindings::leashed::net::tcp::ConnectOptions as NetOptions;
use crate::link::Link;
use crate::proto::command::{com_ping, com_query, com_quit};
use crate::proto::login::{Credentials, Login, LoginStep, ServerInfo};
use crate::proto::query::{QueryResponse, QueryStep, parse_ok};
use crate::proto::{ERR_HEADER, parse_err};
use mysql_common::packets::CommonOkPacket;
use std::cell::RefCell;

/// The component's export root.
pub struct Component;

impl connection::Guest for Component {
    type Connection = MysqlConnection;
}

/// A logged-in link.
struct Session {
    link: Link,
    server: ServerInfo,
}

/// The guest side of an exported `connection` handle.
pub struct MysqlConnection {
    session: RefCell<Option<Session>>,
}

/// Errors after which the connection cannot be trusted any more.
fn is_fatal(error: &Error) -> bool {
    !matches!(error, Error::Server(_))
}

impl MysqlConnection {
    /// Runs `op` on the open session; force-closes it if `op` fails fatally.
    fn with_session<T, E>(
        &self,
        closed: impl FnOnce() -> E,
        error_of: impl Fn(&E) -> &Error,
        op: impl FnOnce(&mut Session) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut slot = self.session.borrow_mut();
        let Some(session) = slot.as_mut() else {
            return Err(closed());
        };
        let result = op(session);
        if let Err(e) = &result {
            if is_fatal(error_of(e)) {
                slot.take().expect("checked above").link.force_close();
            }
        }
        result
    }

    /// COM_QUIT, then force-close. Errors while saying goodbye do not matter: the link is
    /// released either way.
    fn quit(&self) {
        if let Some(mut session) = self.session.borrow_mut().take() {
            session.link.begin_command();
            let _ = session.link.send(&com_quit());
            session.link.force_close();
        }
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
        let mut link = Link::connect(&options.host, options.port, &net)?;
        let creds = Credentials {
            user: &options.user,
            password: options.password.as_deref(),
            database: options.database.as_deref(),
        };
        match login(&mut link, &creds) {
            Ok(server) => {
                let session = Session { link, server };
                Ok(connection::Connection::new(MysqlConnection { session: RefCell::new(Some(session)) }))
            }
            Err(error) => {
                link.force_close();
                Err(error)
            }
        }
    }

    fn query(&self, sql: String) -> Result<Vec<ResultSet>, QueryError> {
        self.with_session(
            || QueryError { completed: Vec::new(), error: Error::Closed },
            |e| &e.error,
            |session| {
                let fail = |error| QueryError { completed: Vec::new(), error };
                session.link.begin_command();
                session.link.send(&com_query(&sql)).map_err(fail)?;
                let mut response = QueryResponse::new(session.server.capabilities);
                loop {
                    let packet = session.link.recv().map_err(fail)?;
                    if let QueryStep::Done(sets) = response.step(&packet)? {
                        return Ok(sets);
                    }
                }
            },
        )
    }

    fn ping(&self) -> Result<(), Error> {
        self.with_session(
            || Error::Closed,
            |e| e,
            |session| {
                session.link.begin_command();
                session.link.send(&com_ping())?;
                let packet = session.link.recv()?;
                if packet.first() == Some(&ERR_HEADER) {
                    return Err(Error::Server(parse_err(&packet, session.server.capabilities)?));
                }
                parse_ok::<CommonOkPacket>(&packet, session.server.capabilities)?;
                Ok(())
            },
        )
    }

    fn close(&self) -> Result<(), Error> {
        self.quit();
        Ok(())
    }
}

/// Runs the login exchange over the link.
fn login(link: &mut Link, creds: &Credentials<'_>) -> Result<ServerInfo, Error> {
    let greeting = link.recv()?;
    let (mut login, response) = Login::start(&greeting, creds)?;
    link.send(&response)?;
    loop {
        let packet = link.recv()?;
        match login.step(&packet)? {
            LoginStep::Send(data) => link.send(&data)?,
            LoginStep::Wait => {}
            LoginStep::Done(server) => return Ok(server),
        }
    }
}
