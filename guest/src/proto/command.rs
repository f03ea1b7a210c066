//! Client command packets (COM_*): their payloads, before framing.
//!
//! mysql_common has no structs for the one-byte commands, so they are spelt out here.

use mysql_common::constants::Command;

/// COM_QUERY: run `sql` with the text protocol.
pub fn com_query(sql: &str) -> Vec<u8> {
    let mut payload = Vec::with_capacity(1 + sql.len());
    payload.push(Command::COM_QUERY as u8);
    payload.extend_from_slice(sql.as_bytes());
    payload
}

/// COM_PING: the server answers with OK.
pub fn com_ping() -> [u8; 1] {
    [Command::COM_PING as u8]
}

/// COM_INIT_DB: make `database` the default; the server answers OK or ERR.
pub fn com_init_db(database: &str) -> Vec<u8> {
    let mut payload = vec![Command::COM_INIT_DB as u8];
    payload.extend_from_slice(database.as_bytes());
    payload
}

/// COM_RESET_CONNECTION: reset the session state; the server answers OK or ERR.
pub fn com_reset_connection() -> [u8; 1] {
    [Command::COM_RESET_CONNECTION as u8]
}

/// COM_QUIT: the server closes the connection without answering.
pub fn com_quit() -> [u8; 1] {
    [Command::COM_QUIT as u8]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// COM_QUERY is the command byte 0x03 followed by the statement text, unterminated.
    #[test]
    fn com_query_is_command_byte_then_text() {
        assert_eq!(com_query("SELECT 1"), b"\x03SELECT 1");
        assert_eq!(com_ping(), [0x0e]);
        assert_eq!(com_quit(), [0x01]);
        assert_eq!(com_init_db("shop"), b"\x02shop");
        assert_eq!(com_reset_connection(), [0x1f]);
    }
}
