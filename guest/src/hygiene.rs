//! Session hygiene: whether a session about to be parked for the next request is provably as
//! its setup left it, so the reset (COM_RESET_CONNECTION and the setup again) can be skipped.
//!
//! The proof rests on the server's session tracker (CLIENT_SESSION_TRACK with
//! `session_track_state_change=ON`), which flags every OK that changed user variables,
//! temporary tables, system variables, the database or SQL-level prepared statements. It does
//! not see everything, so a session also counts as dirty after:
//! - any error (an ERR packet carries no status flags, so what the failed statement changed
//!   before failing is unknown);
//! - an OK with a last insert id or warnings (`LAST_INSERT_ID()` and `SHOW WARNINGS` would
//!   show them to the next request);
//! - SQL whose text names something the tracker misses (measured on MariaDB 10.11, see
//!   [`UNTRACKED`]): table and named locks, HANDLER, `SET TRANSACTION`, `LAST_INSERT_ID(x)`,
//!   procedures, turning the tracker itself off, and what a statement that returns rows
//!   changes (the terminator of a result set never carries the flag): user variables
//!   (`SELECT @v := …`, `SELECT … INTO @v`: any `@name` counts), sequences;
//! - a row stream (its terminator is not checked), or a prepared statement left open.
//!
//! Tracking is switched on by the setup that runs after a reset, so a freshly logged-in
//! session is never provably clean: it is reset the first time it is parked, and tracked from
//! then on. A server without CLIENT_SESSION_TRACK is reset every time, as before.
//!
//! Not covered: a stored function or trigger that takes a named lock or assigns a user variable
//! from inside an ordinary statement. `leashed serve --no-session-reuse` is the way out for such a schema.

/// Words in SQL text (matched case-insensitively, anywhere, literals included: a false match
/// only costs a reset) that mark state the session tracker does not report.
const UNTRACKED: &[&str] = &[
    // LOCK TABLES and GET_LOCK (named locks). (Row locks live only as long as a transaction,
    // and an open transaction is never parked.)
    "lock",
    // HANDLER t OPEN keeps a table handler open in the session.
    "handler",
    // SET TRANSACTION … applies to the session's next transaction.
    "transaction",
    // LAST_INSERT_ID(x) sets the value without an OK reporting it.
    "last_insert_id",
    // A procedure's body is not visible here.
    "call",
    // SET session_track_state_change = OFF is itself not reported.
    "session_track",
    // A statement that returns rows is never flagged, whatever it changed: `SELECT @v := 1`
    // assigns a user variable, and a sequence's NEXTVAL sets the session's PREVIOUS VALUE.
    ":=",
    "nextval",
    "next value",
    "setval",
];

/// The statement SQL that switches tracking on, run as part of the setup after every reset.
pub const TRACKING_ON: &str = "SET SESSION session_track_state_change = ON";

/// What the guest knows about a session's state since it was last reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hygiene {
    /// The server reports state changes on this session.
    tracked: bool,
    /// Something may have changed that the tracker did not (or could not) report.
    dirty: bool,
}

impl Hygiene {
    /// A session just logged in: tracking is not on yet.
    pub fn fresh_login() -> Hygiene {
        Hygiene { tracked: false, dirty: true }
    }

    /// A session just reset and set up again: clean, tracked when the server can track.
    pub fn after_reset(server_tracks: bool) -> Hygiene {
        Hygiene { tracked: server_tracks, dirty: false }
    }

    /// Notes SQL about to be sent (a query, or a statement being prepared).
    pub fn note_sql(&mut self, sql: &str) {
        if may_hold_untracked_state(sql) {
            self.dirty = true;
        }
    }

    /// Notes what an OK or a result's terminator reported.
    pub fn note_ok(&mut self, state_changed: bool, last_insert_id: u64, warnings: u16) {
        if state_changed || last_insert_id != 0 || warnings != 0 {
            self.dirty = true;
        }
    }

    /// Notes anything the tracker cannot vouch for: an error, a row stream, a reset the
    /// plugin asked for (which also switches tracking off).
    pub fn note_unknown(&mut self) {
        self.dirty = true;
    }

    /// Whether the session must be reset before it is parked: anything may have changed, or
    /// `open_statements` prepared statements are still open on it.
    pub fn needs_reset(&self, open_statements: usize) -> bool {
        !self.tracked || self.dirty || open_statements > 0
    }
}

/// Whether `sql` mentions something that holds state the session tracker does not report.
pub fn may_hold_untracked_state(sql: &str) -> bool {
    // Without a lowercase copy: this runs on every query.
    let bytes = sql.as_bytes();
    let mentions = |word: &str| bytes.windows(word.len()).any(|window| window.eq_ignore_ascii_case(word.as_bytes()));
    UNTRACKED.iter().any(|word| mentions(word)) || names_a_user_variable(sql)
}

/// Whether `sql` mentions a user variable (`@name`, not a system variable's `@@name`): `SET`
/// is tracked, but `SELECT … INTO @v` and `SELECT @v := …` assign one unflagged.
fn names_a_user_variable(sql: &str) -> bool {
    let bytes = sql.as_bytes();
    bytes
        .iter()
        .enumerate()
        .any(|(at, &b)| b == b'@' && bytes.get(at + 1) != Some(&b'@') && (at == 0 || bytes[at - 1] != b'@'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_tracked_session_with_nothing_noted_skips_the_reset() {
        assert!(Hygiene::fresh_login().needs_reset(0), "tracking is not on after a login");
        assert!(Hygiene::after_reset(false).needs_reset(0), "a server that cannot track is always reset");
        let clean = Hygiene::after_reset(true);
        assert!(!clean.needs_reset(0));
        assert!(clean.needs_reset(1), "an open prepared statement");

        let mut quiet = clean;
        quiet.note_sql("SELECT id, name FROM items WHERE id = ?");
        quiet.note_sql("SELECT @@character_set_client, @@session.sql_mode");
        quiet.note_ok(false, 0, 0);
        assert!(!quiet.needs_reset(0));

        for mark in [(true, 0, 0), (false, 7, 0), (false, 0, 1)] {
            let mut noted = clean;
            noted.note_ok(mark.0, mark.1, mark.2);
            assert!(noted.needs_reset(0), "{mark:?}");
        }
        let mut failed = clean;
        failed.note_unknown();
        assert!(failed.needs_reset(0));
    }

    /// Each of these left the tracker silent on MariaDB 10.11 (checked with a client that
    /// prints the status flags), so the text itself must mark the session.
    #[test]
    fn what_the_tracker_misses_is_caught_by_its_text() {
        for sql in [
            "LOCK TABLES items READ",
            "DO GET_LOCK('job', 0)",
            "select get_lock('job', 0)",
            "HANDLER items OPEN",
            "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            "DO LAST_INSERT_ID(7)",
            "CALL refresh_totals()",
            "SET session_track_state_change = OFF",
            "SELECT @v := 42",
            "SELECT 42 INTO @v",
            "select 1 into\n@v",
            "SELECT NEXTVAL(orders_seq)",
            "SELECT NEXT VALUE FOR orders_seq",
            "DO SETVAL(orders_seq, 100)",
        ] {
            let mut hygiene = Hygiene::after_reset(true);
            hygiene.note_sql(sql);
            assert!(hygiene.needs_reset(0), "{sql}");
        }
    }
}
