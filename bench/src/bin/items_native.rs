//! items-native: the anchor of the serving benchmark (not a test). The items API of
//! guest/plugins/items-rust, written the way a user who picks no plugin would: a native tokio +
//! hyper service over a mysql_async `Pool` with its defaults, but for one: it stays on TCP, as
//! leashed must (by default mysql_async, told 127.0.0.1, moves to the server's Unix socket,
//! which skips the TCP stack). It answers every route with the
//! same status, headers and JSON bytes as items-rust, so `scripts/bench-serve` loads both with
//! the same requests. (A MySQL error's text is mysql_async's, not leashed's.)
//!
//!     DATABASE_URL=mysql://u:p@127.0.0.1:3306/db items_native [--listen 127.0.0.1:8080]
//!
//! It prints `items-native: listening on http://ADDR/` once it listens.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, Pool, Row};
use serde::Serialize;
use std::convert::Infallible;
use tokio::net::TcpListener;

/// mimalloc, as in `leashed serve`, so the two servers differ in what they do, not in their
/// allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SELECT_ONE: &str = "SELECT id, name, price FROM items WHERE id = ?";
const SELECT_ALL: &str = "SELECT id, name, price FROM items ORDER BY id";
const INSERT: &str = "INSERT INTO items (name, price) VALUES (?, ?)";
const BAD_BODY: &str = "body must be a JSON object with string fields name and price";
/// The largest request body `POST /items` reads, as items-rust.
const MAX_BODY: usize = 64 * 1024;
/// NDJSON lines per body frame when streaming, as items-rust's batch.
const BATCH: usize = 500;

type Body = BoxBody<Bytes, std::io::Error>;

#[derive(Serialize)]
struct Item {
    id: u64,
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

#[tokio::main]
async fn main() {
    let mut listen = "127.0.0.1:8080".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--listen", Some(addr)) => listen = addr,
            _ => fail("usage: DATABASE_URL=mysql://… items_native [--listen ADDR]"),
        }
    }
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| fail("DATABASE_URL is not set"));
    let opts = Opts::from_url(&url).unwrap_or_else(|e| fail(&format!("DATABASE_URL: {e}")));
    let pool = Pool::new(OptsBuilder::from_opts(opts).prefer_socket(false));
    let listener =
        TcpListener::bind(&listen).await.unwrap_or_else(|e| fail(&format!("cannot listen on {listen}: {e}")));
    eprintln!("items-native: listening on http://{}/", listener.local_addr().unwrap());
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let pool = pool.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let pool = pool.clone();
                async move { Ok::<_, Infallible>(handle(&pool, request).await) }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn fail(message: &str) -> ! {
    eprintln!("items-native: {message}");
    std::process::exit(2);
}

/// Routes as items-rust does: 404 for an unknown path, 405 for a method the path does not
/// take, 400 (or 413) for a bad id or body.
async fn handle(pool: &Pool, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let method = request.method().clone();
    if path == "/items" {
        return match method {
            Method::GET if query.split('&').any(|pair| pair == "stream=1") => stream(pool).await,
            Method::GET => list(pool).await,
            Method::POST => match read_body(request).await {
                Ok(body) => match parse_new_item(&body) {
                    Some((name, price)) => create(pool, name, price).await,
                    None => error(400, BAD_BODY),
                },
                Err(reply) => reply,
            },
            _ => error(405, "method not allowed"),
        };
    }
    match path.strip_prefix("/items/") {
        Some(id) if !id.is_empty() && !id.contains('/') => match method {
            Method::GET => match parse_id(id) {
                Some(id) => get(pool, id).await,
                None => error(400, "item id must be an unsigned integer"),
            },
            _ => error(405, "method not allowed"),
        },
        _ => error(404, "not found"),
    }
}

/// `GET /items/{id}`: one prepared SELECT on a pooled connection.
async fn get(pool: &Pool, id: u64) -> Response<Body> {
    let found: Result<Option<Row>, mysql_async::Error> = async {
        let mut conn = pool.get_conn().await?;
        conn.exec_first(SELECT_ONE, (id,)).await
    }
    .await;
    match found.map(|row| row.map(item_from_row)) {
        Ok(Some(Ok(item))) => json(200, &item),
        Ok(Some(Err(message))) => error(500, &message),
        Ok(None) => error(404, &format!("no item {id}")),
        Err(e) => error(500, &e.to_string()),
    }
}

/// `POST /items`: a prepared INSERT; answers the new id.
async fn create(pool: &Pool, name: String, price: String) -> Response<Body> {
    let inserted: Result<u64, mysql_async::Error> = async {
        let mut conn = pool.get_conn().await?;
        conn.exec_drop(INSERT, (name, price)).await?;
        Ok(conn.last_insert_id().unwrap_or(0))
    }
    .await;
    match inserted {
        Ok(id) => json(201, &Created { id }),
        Err(e) => error(500, &e.to_string()),
    }
}

/// `GET /items`: every item as one JSON array, from one text query.
async fn list(pool: &Pool) -> Response<Body> {
    let rows: Result<Vec<Row>, mysql_async::Error> = async { pool.get_conn().await?.query(SELECT_ALL).await }.await;
    match rows.map(|rows| rows.into_iter().map(item_from_row).collect::<Result<Vec<Item>, String>>()) {
        Ok(Ok(items)) => json(200, &items),
        Ok(Err(message)) => error(500, &message),
        Err(e) => error(500, &e.to_string()),
    }
}

/// `GET /items?stream=1`: NDJSON, one line per item, sent `BATCH` lines a frame as the rows
/// arrive. An error before the first row is a 500; after it, a last `{"error":"..."}` line.
async fn stream(pool: &Pool) -> Response<Body> {
    let mut conn = match pool.get_conn().await {
        Ok(conn) => conn,
        Err(e) => return error(500, &e.to_string()),
    };
    let (frames, received) = tokio::sync::mpsc::channel::<Bytes>(4);
    let (started, outcome) = tokio::sync::oneshot::channel::<Result<(), String>>();
    tokio::spawn(async move {
        let mut result = match conn.query_iter(SELECT_ALL).await {
            Ok(result) => result,
            Err(e) => return drop(started.send(Err(e.to_string()))),
        };
        if started.send(Ok(())).is_err() {
            return;
        }
        let mut lines = String::new();
        let mut count = 0;
        loop {
            let (line, failed) = match result.next().await {
                Ok(Some(row)) => match item_from_row(row) {
                    Ok(item) => (serde_json::to_string(&item).expect("items serialize"), false),
                    Err(message) => (error_line(&message), true),
                },
                Ok(None) => break,
                Err(e) => (error_line(&e.to_string()), true),
            };
            lines.push_str(&line);
            lines.push('\n');
            count += 1;
            if failed {
                break;
            }
            if count % BATCH == 0 && frames.send(Bytes::from(std::mem::take(&mut lines))).await.is_err() {
                return;
            }
        }
        if !lines.is_empty() {
            let _ = frames.send(Bytes::from(lines)).await;
        }
    });
    match outcome.await {
        Ok(Ok(())) => {}
        Ok(Err(message)) => return error(500, &message),
        Err(_) => return error(500, "the query task ended"),
    }
    let body = futures_util::stream::unfold(received, |mut received| async move {
        let frame = received.recv().await?;
        Some((Ok::<_, std::io::Error>(Frame::data(frame)), received))
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/x-ndjson")
        .body(StreamBody::new(body).boxed())
        .expect("a valid response")
}

/// The whole request body, up to `MAX_BODY` bytes (413 past it, 400 if unreadable).
async fn read_body(request: Request<Incoming>) -> Result<Bytes, Response<Body>> {
    match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(error(413, "body too large")),
        Err(_) => Err(error(400, "cannot read the request body")),
    }
}

/// `{"name":"pear","price":"2.25"}`; other fields are ignored.
fn parse_new_item(body: &[u8]) -> Option<(String, String)> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    match (value.get("name")?, value.get("price")?) {
        (serde_json::Value::String(name), serde_json::Value::String(price)) => Some((name.clone(), price.clone())),
        _ => None,
    }
}

/// The `{id}` of `/items/{id}`: ASCII digits that fit in a u64.
fn parse_id(text: &str) -> Option<u64> {
    text.bytes().all(|b| b.is_ascii_digit()).then(|| text.parse().ok()).flatten()
}

fn item_from_row(row: Row) -> Result<Item, String> {
    let unexpected = || "unexpected row from the items table".to_string();
    let (id, name, price) = mysql_async::from_row_opt::<(u64, String, String)>(row).map_err(|_| unexpected())?;
    Ok(Item { id, name, price })
}

/// `{"error":"..."}`, the last line of a stream that failed.
fn error_line(message: &str) -> String {
    serde_json::to_string(&ErrorBody { error: message }).expect("a string serializes")
}

fn error(status: u16, message: &str) -> Response<Body> {
    json(status, &ErrorBody { error: message })
}

/// A complete JSON answer with `content-type` and `content-length`, as items-rust sends it.
fn json<T: Serialize>(status: u16, value: &T) -> Response<Body> {
    let body = serde_json::to_vec(value).expect("the answers serialize");
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed())
        .expect("a valid response")
}
