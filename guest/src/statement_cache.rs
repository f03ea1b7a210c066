//! The session's prepared statements: how many are open, and a cache of closed ones keyed by
//! their SQL, so that preparing the same SQL again (in this request, or in a later one that
//! takes the parked session over) costs no round trip.
//!
//! A statement closed while its session is clean goes into the cache instead of getting
//! COM_STMT_CLOSE; the oldest is closed on the server when the cache is full. A reset
//! (COM_RESET_CONNECTION, COM_CHANGE_USER) drops every statement on the server, so it empties
//! the cache and starts a new generation: a statement prepared before it is never cached or
//! closed after it (its id may name a newer statement by then).

use crate::bindings::exports::leashed::mysql::types::Error;
use crate::proto::protocol;
use mysql_common::io::ParseBuf;
use mysql_common::packets::Column;
use mysql_common::proto::MySerialize;

/// How many closed statements a session keeps.
pub const CAPACITY: usize = 16;

/// A statement the server has prepared on this session.
#[derive(Debug, Clone)]
pub struct PreparedSql {
    pub sql: String,
    pub id: u32,
    pub params: u16,
    pub columns: Vec<Column>,
}

/// The session's statements.
#[derive(Debug, Default)]
pub struct StatementCache {
    /// Closed statements, the most recently closed last.
    closed: Vec<PreparedSql>,
    /// Statements handed out and not closed yet.
    open: usize,
    /// Bumped by every reset.
    generation: u32,
}

impl StatementCache {
    /// A cache holding `closed` (as a parked session's state brought them).
    pub fn with(closed: Vec<PreparedSql>) -> StatementCache {
        StatementCache { closed, open: 0, generation: 0 }
    }

    /// The statements the server has open on this session.
    pub fn open(&self) -> usize {
        self.open
    }

    /// The current generation, for a statement being handed out.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Takes a cached statement for `sql` out of the cache, counted as open.
    pub fn check_out(&mut self, sql: &str) -> Option<PreparedSql> {
        let at = self.closed.iter().rposition(|cached| cached.sql == sql)?;
        self.open += 1;
        Some(self.closed.remove(at))
    }

    /// Counts a statement just prepared on the server as open.
    pub fn opened(&mut self) {
        self.open += 1;
    }

    /// A statement of `generation` is being closed. With `keep` (the session is clean and the
    /// statement has no long data pending), it is cached; the ids returned are the ones to
    /// close on the server: the statement itself, or whatever it pushed out of the cache.
    pub fn close(&mut self, statement: PreparedSql, generation: u32, keep: bool) -> Vec<u32> {
        if generation != self.generation {
            // A reset already dropped it on the server (and the count with it).
            return Vec::new();
        }
        self.open = self.open.saturating_sub(1);
        if !keep {
            return vec![statement.id];
        }
        let mut to_close = Vec::new();
        if let Some(at) = self.closed.iter().position(|cached| cached.sql == statement.sql) {
            to_close.push(self.closed.remove(at).id);
        }
        self.closed.push(statement);
        if self.closed.len() > CAPACITY {
            to_close.push(self.closed.remove(0).id);
        }
        to_close
    }

    /// The server dropped every statement (a reset): nothing is cached or open any more.
    pub fn forget_all(&mut self) {
        self.closed.clear();
        self.open = 0;
        self.generation = self.generation.wrapping_add(1);
    }

    /// Removes and returns the cached statements, oldest first (to park them, or close them).
    pub fn take_closed(&mut self) -> Vec<PreparedSql> {
        std::mem::take(&mut self.closed)
    }
}

/// Appends `statements` to a parked state, as many as fit in `budget` bytes in all; returns
/// the ones that did not fit, which the caller closes on the server.
pub fn encode(statements: Vec<PreparedSql>, budget: usize, state: &mut Vec<u8>) -> Vec<PreparedSql> {
    let mut left_out = Vec::new();
    let mut encoded: Vec<Vec<u8>> = Vec::new();
    let mut size = 4;
    // The most recently used are kept first when not all fit.
    for statement in statements.into_iter().rev() {
        let bytes = encode_one(&statement);
        if size + bytes.len() > budget {
            left_out.push(statement);
        } else {
            size += bytes.len();
            encoded.push(bytes);
        }
    }
    state.extend((encoded.len() as u32).to_le_bytes());
    for bytes in encoded.iter().rev() {
        state.extend(bytes);
    }
    left_out
}

fn encode_one(statement: &PreparedSql) -> Vec<u8> {
    let mut bytes = Vec::new();
    put_bytes(&mut bytes, statement.sql.as_bytes());
    bytes.extend(statement.id.to_le_bytes());
    bytes.extend(statement.params.to_le_bytes());
    bytes.extend((statement.columns.len() as u32).to_le_bytes());
    for column in &statement.columns {
        let mut packet = Vec::new();
        column.serialize(&mut packet);
        put_bytes(&mut bytes, &packet);
    }
    bytes
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend((bytes.len() as u32).to_le_bytes());
    out.extend(bytes);
}

/// Reads the statements [`encode`] wrote at the start of `state`.
pub fn decode(mut state: &[u8]) -> Result<Vec<PreparedSql>, Error> {
    let bad = || protocol("malformed statement cache in a parked session's state");
    let count = take_u32(&mut state).ok_or_else(bad)?;
    let mut statements = Vec::new();
    for _ in 0..count {
        let sql = String::from_utf8(take_bytes(&mut state).ok_or_else(bad)?.to_vec()).map_err(|_| bad())?;
        let id = take_u32(&mut state).ok_or_else(bad)?;
        let (params, rest) = state.split_first_chunk::<2>().ok_or_else(bad)?;
        state = rest;
        let columns = take_u32(&mut state).ok_or_else(bad)?;
        let mut parsed = Vec::new();
        for _ in 0..columns {
            let packet = take_bytes(&mut state).ok_or_else(bad)?;
            parsed.push(ParseBuf(packet).parse::<Column>(()).map_err(|_| bad())?);
        }
        statements.push(PreparedSql { sql, id, params: u16::from_le_bytes(*params), columns: parsed });
    }
    if !state.is_empty() {
        return Err(bad());
    }
    Ok(statements)
}

fn take_u32(state: &mut &[u8]) -> Option<u32> {
    let (bytes, rest) = state.split_first_chunk::<4>()?;
    *state = rest;
    Some(u32::from_le_bytes(*bytes))
}

fn take_bytes<'a>(state: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = take_u32(state)? as usize;
    let bytes = state.get(..len)?;
    *state = &state[len..];
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Column definition for `SELECT 1` as MariaDB 10.11 sends it.
    const COLUMN_ONE: &[u8] = b"\x03def\x00\x00\x00\x011\x00\x0c\x3f\x00\x01\x00\x00\x00\x08\x81\x00\x00\x00\x00";

    fn statement(sql: &str, id: u32) -> PreparedSql {
        let column = ParseBuf(COLUMN_ONE).parse::<Column>(()).unwrap();
        PreparedSql { sql: sql.into(), id, params: 1, columns: vec![column] }
    }

    #[test]
    fn a_closed_statement_is_handed_out_again_for_the_same_sql() {
        let mut cache = StatementCache::default();
        cache.opened();
        assert!(cache.close(statement("SELECT ?", 1), 0, true).is_empty(), "cached, not closed");
        assert_eq!(cache.open(), 0);
        assert!(cache.check_out("SELECT ? ").is_none(), "the SQL must match exactly");
        assert_eq!(cache.check_out("SELECT ?").map(|s| s.id), Some(1));
        assert_eq!(cache.open(), 1);
        assert!(cache.check_out("SELECT ?").is_none(), "handed out once");
    }

    #[test]
    fn what_is_not_kept_is_closed_on_the_server() {
        let mut cache = StatementCache::default();
        cache.opened();
        assert_eq!(cache.close(statement("SELECT ?", 1), 0, false), vec![1]);
        // Two open for the same SQL: the second one closed replaces the first.
        cache.opened();
        cache.opened();
        assert!(cache.close(statement("SELECT ?", 2), 0, true).is_empty());
        assert_eq!(cache.close(statement("SELECT ?", 3), 0, true), vec![2]);
        // Past the capacity the oldest goes.
        for id in 10..10 + CAPACITY as u32 {
            cache.opened();
            let evicted = cache.close(statement(&format!("SELECT {id}"), id), 0, true);
            assert_eq!(evicted, if id == 10 + CAPACITY as u32 - 1 { vec![3] } else { vec![] });
        }
    }

    #[test]
    fn a_reset_forgets_everything_and_ignores_older_statements() {
        let mut cache = StatementCache::default();
        cache.opened();
        cache.opened();
        assert!(cache.close(statement("SELECT ?", 1), 0, true).is_empty());
        cache.forget_all();
        assert_eq!(cache.open(), 0);
        assert!(cache.check_out("SELECT ?").is_none());
        assert!(cache.close(statement("SELECT 2", 2), 0, true).is_empty(), "dropped by the reset already");
        assert!(cache.check_out("SELECT 2").is_none());
    }

    #[test]
    fn the_cache_round_trips_through_a_parked_state_within_its_budget() {
        let statements = vec![statement("SELECT ?", 1), statement("SELECT 2 + ?", 2)];
        let mut state = Vec::new();
        assert!(encode(statements.clone(), 4096, &mut state).is_empty());
        let decoded = decode(&state).unwrap();
        assert_eq!(decoded.len(), 2);
        assert_eq!((decoded[1].sql.as_str(), decoded[1].id, decoded[1].params), ("SELECT 2 + ?", 2, 1));
        assert_eq!(decoded[1].columns[0].name_str(), "1");

        // A budget for one: the most recent stays, the other is handed back to be closed.
        let one = encode_one(&statements[1]).len() + 4;
        let mut small = Vec::new();
        let left_out = encode(statements, one, &mut small);
        assert_eq!(left_out.iter().map(|s| s.id).collect::<Vec<_>>(), vec![1]);
        assert_eq!(decode(&small).unwrap().iter().map(|s| s.id).collect::<Vec<_>>(), vec![2]);

        assert!(decode(&state[..state.len() - 1]).is_err());
        assert!(decode(&[1, 0, 0, 0]).is_err());
    }
}
