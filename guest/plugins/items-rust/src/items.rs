//! The `items` table through leashed:mysql: one connection per request, and every connection,
//! statement and row stream closed (then dropped) before the handler returns, on every path.
//!
//! JSON is compact, with keys in the order id, name, price; app.py writes the same bytes.

use crate::leashed::mysql::connection::{Connection, Statement};
use crate::leashed::mysql::types::{Error, QueryError, Value};
use crate::leashed::net::tcp::ErrorCode;
use crate::wasi::http::types::{OutgoingBody, ResponseOutparam};
use crate::{Reply, config, start_response, write_all};
use serde::Serialize;

/// Rows per `next-batch` call when streaming.
const BATCH: u32 = 500;

const SELECT_ONE: &str = "SELECT id, name, price FROM items WHERE id = ?";
const SELECT_ALL: &str = "SELECT id, name, price FROM items ORDER BY id";
const INSERT: &str = "INSERT INTO items (name, price) VALUES (?, ?)";

const BAD_BODY: &str = "body must be a JSON object with string fields name and price";

/// An item as JSON: `{"id":1,"name":"apple","price":"1.50"}`.
#[derive(Serialize)]
struct Item {
    id: serde_json::Number,
    name: String,
    price: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

#[derive(Serialize)]
struct Created {
    id: u64,
}

/// The body of `POST /items`.
pub struct NewItem {
    name: String,
    price: String,
}

/// `{"error":"..."}`.
pub fn error_json(message: &str) -> String {
    serde_json::to_string(&ErrorBody { error: message }).expect("a string serializes")
}

/// The `{id}` of `/items/{id}`: ASCII digits that fit in a u64.
pub fn parse_id(text: &str) -> Result<u64, String> {
    let digits = text.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| text.parse::<u64>().ok()).flatten().ok_or_else(|| "item id must be an unsigned integer".into())
}

/// `{"name":"pear","price":"2.25"}`; other fields are ignored.
pub fn parse_new_item(body: &[u8]) -> Result<NewItem, String> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| BAD_BODY)?;
    match (value.get("name"), value.get("price")) {
        (Some(serde_json::Value::String(name)), Some(serde_json::Value::String(price))) if value.is_object() => {
            Ok(NewItem { name: name.clone(), price: price.clone() })
        }
        _ => Err(BAD_BODY.into()),
    }
}

/// `GET /items/{id}`, with a prepared statement.
pub fn get(id: u64) -> Reply {
    let found = with_connection(|connection| {
        let sets = with_statement(connection, SELECT_ONE, |statement| statement.execute(&[Value::Uint(id)]))?;
        match sets.into_iter().next().and_then(|set| set.rows.into_iter().next()) {
            Some(row) => item_from_row(row).map(Some).map_err(Failure::Message),
            None => Ok(None),
        }
    });
    match found {
        Ok(Some(item)) => Reply::json(200, to_json(&item)),
        Ok(None) => Reply::error(404, &format!("no item {id}")),
        Err(message) => Reply::error(500, &message),
    }
}

/// `POST /items`: inserts with a prepared statement and answers the new id.
pub fn create(item: &NewItem) -> Reply {
    let params = [Value::Text(item.name.clone()), Value::Decimal(item.price.clone())];
    let inserted =
        with_connection(|connection| with_statement(connection, INSERT, |statement| statement.execute(&params)));
    match inserted {
        Ok(sets) => {
            let id = sets.first().map_or(0, |set| set.last_insert_id);
            Reply::json(201, serde_json::to_string(&Created { id }).expect("an id serializes"))
        }
        Err(message) => Reply::error(500, &message),
    }
}

/// `GET /items`: every item, as one JSON array, read with one buffered `query`.
pub fn list() -> Reply {
    let listed = with_connection(|connection| {
        let sets = connection.query(SELECT_ALL)?;
        let rows = sets.into_iter().next().map(|set| set.rows).unwrap_or_default();
        rows.into_iter().map(item_from_row).collect::<Result<Vec<Item>, String>>().map_err(Failure::Message)
    });
    match listed {
        Ok(items) => Reply::json(200, to_json(&items)),
        Err(message) => Reply::error(500, &message),
    }
}

/// `GET /items?stream=1`: NDJSON, one line per item, written batch by batch as the rows
/// arrive, so the whole result is never in memory. An error before the first batch is a 500;
/// once the 200 is sent, the first error ends the body as a last `{"error":"..."}` line.
pub fn stream(response_out: ResponseOutparam) {
    let options = match config::connect_options() {
        Ok(options) => options,
        Err(message) => return crate::send_reply(response_out, Reply::error(500, &message)),
    };
    let connection = match Connection::open(&options) {
        Ok(connection) => connection,
        Err(e) => return crate::send_reply(response_out, Reply::error(500, &message(&e))),
    };
    let rows = match connection.query_stream(SELECT_ALL) {
        Ok(rows) => rows,
        Err(e) => {
            let _ = connection.close();
            drop(connection);
            return crate::send_reply(response_out, Reply::error(500, &message(&e)));
        }
    };
    let body = start_response(response_out, 200, "application/x-ndjson", None);
    let out = body.write().expect("a new body's stream is taken once");
    // `Ok(false)`: the client went away, so nothing more is written.
    let mut outcome: Result<bool, String> = Ok(true);
    while let Ok(true) = outcome {
        outcome = match rows.next_batch(BATCH) {
            Ok(batch) if batch.is_empty() => break,
            Ok(batch) => ndjson(batch).map(|lines| write_all(&out, lines.as_bytes()).is_ok()),
            Err(e) => Err(message(&e)),
        };
    }
    let closed = rows.close().map_err(|e| message(&e));
    drop(rows);
    let closed = closed.and(connection.close().map_err(|e| message(&e)));
    drop(connection);
    let written = match outcome.and_then(|open| closed.map(|()| open)) {
        Ok(open) => open,
        Err(message) => write_all(&out, format!("{}\n", error_json(&message)).as_bytes()).is_ok(),
    };
    drop(out);
    if written {
        let _ = OutgoingBody::finish(body, None);
    }
}

/// One batch of rows as NDJSON lines.
fn ndjson(batch: Vec<Vec<Value>>) -> Result<String, String> {
    let mut lines = String::new();
    for row in batch {
        lines.push_str(&to_json(&item_from_row(row)?));
        lines.push('\n');
    }
    Ok(lines)
}

/// Why a request failed: a MySQL error, or a message of our own.
enum Failure {
    Mysql(Error),
    Message(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Mysql(e)
    }
}

impl From<QueryError> for Failure {
    fn from(e: QueryError) -> Failure {
        Failure::Mysql(e.error)
    }
}

/// Opens a connection from the environment's configuration, runs `work` on it, and closes it
/// whatever `work` did. The first failure is the one reported.
fn with_connection<T>(work: impl FnOnce(&Connection) -> Result<T, Failure>) -> Result<T, String> {
    let options = config::connect_options()?;
    let connection = Connection::open(&options).map_err(|e| message(&e))?;
    let result = work(&connection);
    let closed = connection.close();
    drop(connection);
    match (result, closed) {
        (Err(Failure::Mysql(e)), _) => Err(message(&e)),
        (Err(Failure::Message(text)), _) => Err(text),
        (Ok(_), Err(e)) => Err(message(&e)),
        (Ok(value), Ok(())) => Ok(value),
    }
}

/// Prepares `sql`, runs `work` on the statement, and closes it whatever `work` did.
fn with_statement<T>(
    connection: &Connection,
    sql: &str,
    work: impl FnOnce(&Statement) -> Result<T, QueryError>,
) -> Result<T, Failure> {
    let statement = connection.prepare(sql)?;
    let result = work(&statement);
    let closed = statement.close();
    drop(statement);
    let value = result?;
    closed?;
    Ok(value)
}

/// `id, name, price` as an item.
fn item_from_row(row: Vec<Value>) -> Result<Item, String> {
    let unexpected = || "unexpected row from the items table".to_string();
    let mut values = row.into_iter();
    let id = match values.next() {
        Some(Value::Uint(id)) => serde_json::Number::from(id),
        Some(Value::Int(id)) => serde_json::Number::from(id),
        _ => return Err(unexpected()),
    };
    let name = match values.next() {
        Some(Value::Text(name)) => name,
        _ => return Err(unexpected()),
    };
    let price = match values.next() {
        Some(Value::Decimal(price) | Value::Text(price)) => price,
        _ => return Err(unexpected()),
    };
    Ok(Item { id, name, price })
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("items serialize")
}

/// The text of a leashed:mysql error, as app.py writes it too.
pub fn message(error: &Error) -> String {
    match error {
        Error::Server(e) | Error::Auth(e) => e.message.clone(),
        Error::Io(code) => format!("socket error: {}", socket_error(code)),
        Error::Protocol(text) => format!("protocol error: {text}"),
        Error::Invalid(text) => format!("invalid: {text}"),
        Error::Closed => "connection closed".into(),
    }
}

fn socket_error(code: &ErrorCode) -> String {
    match code {
        ErrorCode::Denied => "denied".into(),
        ErrorCode::LimitReached => "limit-reached".into(),
        ErrorCode::NameUnresolvable => "name-unresolvable".into(),
        ErrorCode::ConnectionRefused => "connection-refused".into(),
        ErrorCode::ConnectionReset => "connection-reset".into(),
        ErrorCode::TimedOut => "timed-out".into(),
        ErrorCode::Closed => "closed".into(),
        ErrorCode::InvalidState => "invalid-state".into(),
        ErrorCode::Tls(text) => format!("tls: {text}"),
        ErrorCode::Other(text) => text.clone(),
    }
}
