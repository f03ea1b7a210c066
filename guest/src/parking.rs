//! How a session is handed from one instance to the next (session reuse): parked when it is
//! closed clean, reset first unless it is provably untouched (`hygiene.rs`), and taken over by
//! a later `open` of the same session. The key and the state's format are in `reuse.rs`.

use crate::bindings::exports::leashed::mysql::types::Error;
use crate::bindings::exports::leashed::mysql::types::{ConnectOptions, LocalFile};
use crate::client::Session;
use crate::client::read_results;
use crate::hygiene::{Hygiene, TRACKING_ON};
use crate::link::Link;
use crate::proto::command::{com_ping, com_reset_connection};
use crate::proto::login::AuthPolicy;
use crate::proto::query::QueryResponse;
use crate::proto::statement::com_stmt_close;
use crate::reuse::{decode_state, encode_state, now_ms, session_key};
use crate::statement_cache::StatementCache;
use mysql_common::constants::CapabilityFlags;

/// What parking needs: the session's key, and the SQL that, after a reset, gives the session
/// back its database and setup.
#[derive(Clone)]
pub(crate) struct Reuse {
    key: String,
    setup: String,
}

impl Reuse {
    /// Only a session with a database is parked: a reset keeps whatever database `USE` last
    /// chose, so the setup selects the session's own again, and without one there is none to
    /// go back to.
    pub(crate) fn for_options(options: &ConnectOptions, setup: &Option<String>) -> Option<Reuse> {
        let database = options.database.as_ref()?;
        let mut sql = format!("USE `{}`", database.replace('`', "``"));
        if let Some(setup) = setup {
            sql.push_str("; ");
            sql.push_str(setup);
        }
        Some(Reuse { key: session_key(options), setup: sql })
    }

    /// The setup after a reset, with session tracking switched on when the server can track.
    fn setup_after_reset(&self, server_tracks: bool) -> String {
        if server_tracks { format!("{TRACKING_ON}; {}", self.setup) } else { self.setup.clone() }
    }
}

/// Whether the server tracks session state for this session (it agreed to CLIENT_SESSION_TRACK).
fn server_tracks(session: &Session) -> bool {
    session.server.capabilities.contains(CapabilityFlags::CLIENT_SESSION_TRACK)
}

impl Session {
    /// Offers a clean session (no transaction, no row stream) to the host for reuse; whether it
    /// was parked. If the host takes it, it is reset unless provably untouched (and withdrawn
    /// if the reset fails), and released for the host to park; its cached statements travel
    /// with it. A session that is not parked is left to the caller.
    pub(crate) fn park(&mut self) -> bool {
        let Some(reuse) = self.reuse.take().filter(|_| !self.streaming && !self.in_transaction) else {
            return false;
        };
        let reset = self.hygiene.needs_reset(self.statements.open());
        let statements = if reset { Vec::new() } else { self.statements.take_closed() };
        let (state, left_out) = encode_state(&self.server, now_ms(), statements);
        if !self.link.offer_for_reuse(&reuse.key, &state) {
            self.reuse = Some(reuse);
            return false;
        }
        let ready = if reset {
            self.reset_for_reuse(&reuse)
        } else {
            // The cached statements that did not fit in the state are closed (no reply).
            left_out.iter().try_for_each(|statement| {
                self.link.begin_command();
                self.link.send(&com_stmt_close(statement.id))
            })
        };
        if ready.is_err() || self.link.has_unread() {
            self.link.withdraw_offer();
        }
        true
    }

    /// COM_RESET_CONNECTION (rolls back, drops temporary tables, clears variables and prepared
    /// statements), then the session setup again, with tracking on: the session is as a fresh
    /// login leaves it. Both go out in one write, so the reset costs one round trip. If the
    /// reset fails, the setup still runs, and the caller withdraws the session anyway.
    fn reset_for_reuse(&mut self, reuse: &Reuse) -> Result<(), Error> {
        let setup = reuse.setup_after_reset(server_tracks(self));
        let query = crate::proto::command::com_query(&setup);
        self.link.send_pipelined(&[&com_reset_connection(), &query])?;
        self.read_ok()?;
        self.link.next_reply();
        read_results(self, QueryResponse::new(self.server.capabilities)).map_err(|failure| failure.error)?;
        Ok(())
    }

    /// A session another instance parked under `reuse.key`, if one is parked and alive; `None`
    /// otherwise (a dead one is released on the way). The host lends only a socket the server
    /// has not closed; one parked more than a second ago must also answer a ping.
    pub(crate) fn resume(reuse: &Reuse, policy: &AuthPolicy, local_files: &[LocalFile]) -> Option<Session> {
        let (mut link, state) = Link::resume(&reuse.key)?;
        let Some(parked) = decode_state(&state) else {
            link.force_close();
            return None;
        };
        let trusted = parked.needs_no_ping(now_ms());
        link.set_max_packet(policy.max_packet as usize);
        let mut session = Session::new(link, parked.server, policy.clone(), local_files.to_vec(), Some(reuse.clone()));
        // Every parked session was reset with tracking on, or was tracked and untouched.
        session.hygiene = Hygiene::after_reset(server_tracks(&session));
        session.statements = StatementCache::with(parked.statements);
        if trusted {
            return Some(session);
        }
        match session.simple_command(&com_ping()) {
            Ok(()) => Some(session),
            Err(_) => {
                session.link.force_close();
                None
            }
        }
    }
}
