//! items-rust: an example leashed plugin (world leashed:mysql/plugin) serving a JSON API over a
//! MySQL `items` table. This file owns the HTTP side: routing, reading the request, writing the
//! response; `items.rs` talks to MySQL, `config.rs` reads the environment.
//!
//! Routes: `GET /items/{id}`, `POST /items`, `GET /items` (a JSON array) and
//! `GET /items?stream=1` (NDJSON, streamed batch by batch). Errors are `{"error":"..."}`.
//! guest/plugins/items-python/app.py answers every request with the same bytes.

wit_bindgen::generate!({ world: "plugin", path: "../../../wit", generate_all });

mod config;
mod items;

use exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam};
use wasi::io::streams::{OutputStream, StreamError};

/// The largest request body `POST /items` reads.
const MAX_BODY: usize = 64 * 1024;
/// `blocking-write-and-flush` takes at most 4096 bytes per call.
const WRITE_CHUNK: usize = 4096;

/// A complete answer: status and JSON body.
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn json(status: u16, body: String) -> Reply {
        Reply { status, body }
    }

    /// `{"error":"..."}` with `status`.
    pub fn error(status: u16, message: &str) -> Reply {
        Reply { status, body: items::error_json(message) }
    }
}

/// What a request asks for, once routed and its input checked.
enum Route {
    Get(u64),
    Create(items::NewItem),
    List,
    Stream,
}

struct Plugin;

impl Guest for Plugin {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        match route(request) {
            Err(reply) => send_reply(response_out, reply),
            Ok(Route::Get(id)) => send_reply(response_out, items::get(id)),
            Ok(Route::Create(item)) => send_reply(response_out, items::create(&item)),
            Ok(Route::List) => send_reply(response_out, items::list()),
            Ok(Route::Stream) => items::stream(response_out),
        }
    }
}

export!(Plugin);

/// Routes the request and checks its input: 404 for an unknown path, 405 for a method the
/// path does not take, 400 (or 413) for a bad id or body.
fn route(request: IncomingRequest) -> Result<Route, Reply> {
    let target = request.path_with_query().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let method = request.method();
    if path == "/items" {
        return match method {
            Method::Get if query.split('&').any(|pair| pair == "stream=1") => Ok(Route::Stream),
            Method::Get => Ok(Route::List),
            Method::Post => {
                let body = read_body(request)?;
                items::parse_new_item(&body).map(Route::Create).map_err(|message| Reply::error(400, &message))
            }
            _ => Err(Reply::error(405, "method not allowed")),
        };
    }
    match path.strip_prefix("/items/") {
        Some(id) if !id.is_empty() && !id.contains('/') => match method {
            Method::Get => items::parse_id(id).map(Route::Get).map_err(|message| Reply::error(400, &message)),
            _ => Err(Reply::error(405, "method not allowed")),
        },
        _ => Err(Reply::error(404, "not found")),
    }
}

/// Reads the whole request body, up to `MAX_BODY` bytes.
fn read_body(request: IncomingRequest) -> Result<Vec<u8>, Reply> {
    let unreadable = || Reply::error(400, "cannot read the request body");
    let body = request.consume().map_err(|()| unreadable())?;
    let stream = body.stream().map_err(|()| unreadable())?;
    let mut bytes = Vec::new();
    let outcome = loop {
        match stream.blocking_read(WRITE_CHUNK as u64) {
            Ok(chunk) if bytes.len() + chunk.len() > MAX_BODY => break Err(Reply::error(413, "body too large")),
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break Ok(bytes),
            Err(StreamError::LastOperationFailed(_)) => break Err(unreadable()),
        }
    };
    // The stream is the body's child: it goes first.
    drop(stream);
    drop(wasi::http::types::IncomingBody::finish(body));
    outcome
}

/// Starts a response with `status`, `content-type` and, when the body's size is known,
/// `content-length` (so HTTP/1.0 clients can keep the connection); hands it to the host and
/// returns its body for the caller to write and then `finish`.
pub fn start_response(
    response_out: ResponseOutparam,
    status: u16,
    content_type: &str,
    length: Option<usize>,
) -> OutgoingBody {
    let mut fields = vec![("content-type".to_string(), content_type.as_bytes().to_vec())];
    if let Some(length) = length {
        fields.push(("content-length".to_string(), length.to_string().into_bytes()));
    }
    let headers = Fields::from_list(&fields).expect("content-type and content-length are valid headers");
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).expect("the status codes used here are valid");
    let body = response.body().expect("a new response's body is taken once");
    ResponseOutparam::set(response_out, Ok(response));
    body
}

/// Writes all of `bytes`, in chunks the stream accepts. A failure means the client is gone.
pub fn write_all(stream: &OutputStream, bytes: &[u8]) -> Result<(), StreamError> {
    for chunk in bytes.chunks(WRITE_CHUNK) {
        stream.blocking_write_and_flush(chunk)?;
    }
    Ok(())
}

/// Sends a complete JSON reply.
pub fn send_reply(response_out: ResponseOutparam, reply: Reply) {
    let body = start_response(response_out, reply.status, "application/json", Some(reply.body.len()));
    let stream = body.write().expect("a new body's stream is taken once");
    let written = write_all(&stream, reply.body.as_bytes());
    drop(stream);
    // Without `finish` the host sees the body as broken, which is right when the write failed.
    if written.is_ok() {
        let _ = OutgoingBody::finish(body, None);
    }
}
