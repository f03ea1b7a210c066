"""items-python: the example leashed plugin (world leashed:mysql/plugin) in Python, built with
componentize-py 0.25.1. It answers every request with the same status and the same body bytes as
guest/plugins/items-rust: a JSON API over a MySQL `items` table.

Routes: GET /items/{id}, POST /items, GET /items (a JSON array) and GET /items?stream=1 (NDJSON,
streamed batch by batch). Errors are {"error":"..."}. Configuration: DATABASE_URL
(mysql://USER:PASSWORD@HOST:PORT/DB), MYSQL_TLS_MODE, MYSQL_CA_PEM.

Every connection, statement and row stream is closed, then dropped (`with` releases the handle),
before `handle` returns: the host audits the sockets behind them right after.
"""

import json
import os

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import leashed_mysql_types as types
from wit_world.imports import tcp
from wit_world.imports.connection import Connection
from wit_world.imports.streams import StreamError_Closed
from wit_world.imports.wasi_http_types import (
    Fields,
    IncomingBody,
    Method_Get,
    Method_Post,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

MAX_BODY = 64 * 1024  # the largest request body POST /items reads
WRITE_CHUNK = 4096  # blocking-write-and-flush takes at most 4096 bytes per call
BATCH = 500  # rows per next-batch call when streaming
DEFAULT_PORT = 3306

SELECT_ONE = "SELECT id, name, price FROM items WHERE id = ?"
SELECT_ALL = "SELECT id, name, price FROM items ORDER BY id"
INSERT = "INSERT INTO items (name, price) VALUES (?, ?)"

BAD_BODY = "body must be a JSON object with string fields name and price"
URL_SHAPE = "DATABASE_URL must look like mysql://USER:PASSWORD@HOST:PORT/DB"
BAD_ESCAPE = "DATABASE_URL has a bad percent-encoding"
TLS_MODES = {
    "": types.TlsMode.PREFERRED,
    "preferred": types.TlsMode.PREFERRED,
    "disabled": types.TlsMode.DISABLED,
    "required": types.TlsMode.REQUIRED,
    "verify-ca": types.TlsMode.VERIFY_CA,
    "verify-identity": types.TlsMode.VERIFY_IDENTITY,
}


class Failure(Exception):
    """A request that ends with {"error": message} and `status`."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request, response_out):
        try:
            with request:
                kind, arg = route(request)
            if kind == "get":
                send(response_out, *get_item(arg))
            elif kind == "create":
                send(response_out, *create_item(*arg))
            elif kind == "list":
                send(response_out, *list_items())
            else:
                stream_items(response_out)
        except Failure as failure:
            send(response_out, failure.status, error_json(failure.message))


# --- HTTP ---------------------------------------------------------------------------------------


def route(request):
    """("get", id) | ("create", (name, price)) | ("list", None) | ("stream", None), or raises a
    Failure: 404 for an unknown path, 405 for a method the path does not take, 400/413 for a bad
    id or body."""
    target = request.path_with_query() or ""
    path, _, query = target.partition("?")
    method = request.method()
    if path == "/items":
        if isinstance(method, Method_Get):
            return ("stream", None) if "stream=1" in query.split("&") else ("list", None)
        if isinstance(method, Method_Post):
            return "create", parse_new_item(read_body(request))
        raise Failure(405, "method not allowed")
    if path.startswith("/items/"):
        item_id = path[len("/items/"):]
        if item_id and "/" not in item_id:
            if not isinstance(method, Method_Get):
                raise Failure(405, "method not allowed")
            return "get", parse_id(item_id)
    raise Failure(404, "not found")


def read_body(request):
    """The whole request body, up to MAX_BODY bytes."""
    unreadable = Failure(400, "cannot read the request body")
    try:
        body = request.consume()
    except Err:
        raise unreadable
    try:
        stream = body.stream()
    except Err:
        drop(body)
        raise unreadable
    data = bytearray()
    failure = None
    with stream:  # the stream is the body's child: it goes first
        while True:
            try:
                chunk = stream.blocking_read(WRITE_CHUNK)
            except Err as e:
                failure = None if isinstance(e.value, StreamError_Closed) else unreadable
                break
            if len(data) + len(chunk) > MAX_BODY:
                failure = Failure(413, "body too large")
                break
            data += chunk
    drop(IncomingBody.finish(body))
    if failure:
        raise failure
    return bytes(data)


def start_response(response_out, status, content_type, length=None):
    """Hands a response with `status`, `content-type` and, when the body's size is known,
    `content-length` (so HTTP/1.0 clients can keep the connection) to the host and returns its
    body, for the caller to write and then finish."""
    fields = [("content-type", content_type.encode())]
    if length is not None:
        fields.append(("content-length", str(length).encode()))
    response = OutgoingResponse(Fields.from_list(fields))
    response.set_status_code(status)
    body = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    return body


def write_all(out, data):
    """Writes all of `data`; False when the client is gone."""
    try:
        for start in range(0, len(data), WRITE_CHUNK):
            out.blocking_write_and_flush(data[start:start + WRITE_CHUNK])
    except Err:
        return False
    return True


def send(response_out, status, body):
    """Sends a complete JSON reply."""
    data = body.encode()
    out_body = start_response(response_out, status, "application/json", len(data))
    with out_body.write() as out:
        written = write_all(out, data)
    finish(out_body, written)


def finish(out_body, written):
    # Without `finish` the host sees the body as broken, which is right when a write failed.
    if written:
        OutgoingBody.finish(out_body, None)
    else:
        drop(out_body)


def drop(resource):
    resource.__exit__(None, None, None)


# --- JSON ---------------------------------------------------------------------------------------


def to_json(value):
    """Compact JSON, as serde_json writes it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def error_json(message):
    return to_json({"error": message})


def parse_id(text):
    """The {id} of /items/{id}: ASCII digits that fit in a u64."""
    if all("0" <= c <= "9" for c in text) and int(text) < 2**64:
        return int(text)
    raise Failure(400, "item id must be an unsigned integer")


def reject(_):
    raise ValueError("not JSON")


def finite(text):
    """A number serde_json reads too: one that fits in an f64."""
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise ValueError("number out of range")
    return number


def depth(value):
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


def parse_new_item(body):
    """{"name":"pear","price":"2.25"}; other fields are ignored. Refuses what serde_json refuses
    (NaN, numbers beyond f64, lone surrogates, nesting of 128 or more), so both plugins agree."""
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=reject, parse_float=finite, parse_int=finite)
        to_json(value).encode("utf-8")  # lone surrogates raise UnicodeEncodeError
        name, price = value.get("name"), value.get("price")
        if depth(value) < 128 and isinstance(name, str) and isinstance(price, str):
            return name, price
    except (ValueError, AttributeError, RecursionError):  # UnicodeError is a ValueError
        pass
    raise Failure(400, BAD_BODY)


def item_from_row(row):
    """`id, name, price` as an item, keys in that order."""
    unexpected = Failure(500, "unexpected row from the items table")
    if len(row) < 3:
        raise unexpected
    item_id, name, price = row[0], row[1], row[2]
    if not isinstance(item_id, (types.Value_Uint, types.Value_Int)):
        raise unexpected
    if not isinstance(name, types.Value_Text):
        raise unexpected
    if not isinstance(price, (types.Value_Decimal, types.Value_Text)):
        raise unexpected
    return {"id": item_id.value, "name": name.value, "price": price.value}


# --- MySQL --------------------------------------------------------------------------------------


def get_item(item_id):
    """GET /items/{id}, with a prepared statement."""

    def work(connection):
        sets = with_statement(connection, SELECT_ONE, lambda s: s.execute([types.Value_Uint(item_id)]))
        if sets and sets[0].rows:
            return item_from_row(sets[0].rows[0])
        return None

    item = with_connection(work)
    if item is None:
        return 404, error_json(f"no item {item_id}")
    return 200, to_json(item)


def create_item(name, price):
    """POST /items: inserts with a prepared statement and answers the new id."""
    params = [types.Value_Text(name), types.Value_Decimal(price)]
    sets = with_connection(lambda c: with_statement(c, INSERT, lambda s: s.execute(params)))
    return 201, to_json({"id": sets[0].last_insert_id if sets else 0})


def list_items():
    """GET /items: every item, as one JSON array, read with one buffered query."""

    def work(connection):
        sets = connection.query(SELECT_ALL)
        return [item_from_row(row) for row in (sets[0].rows if sets else [])]

    return 200, to_json(with_connection(work))


def stream_items(response_out):
    """GET /items?stream=1: NDJSON, one line per item, written batch by batch as the rows arrive.
    An error before the first batch is a 500; once the 200 is sent, the first error ends the
    body as a last {"error":"..."} line."""
    options = connect_options()
    try:
        connection = Connection.open(options)
    except Err as e:
        raise Failure(500, message(e.value))
    with connection:
        try:
            rows = connection.query_stream(SELECT_ALL)
        except Err as e:
            close_quietly(connection)
            raise Failure(500, message(e.value))
        out_body = start_response(response_out, 200, "application/x-ndjson")
        out = out_body.write()
        failure, still_open = None, True
        with rows:
            while still_open:
                try:
                    batch = rows.next_batch(BATCH)
                    if not batch:
                        break
                    lines = "".join(to_json(item_from_row(row)) + "\n" for row in batch)
                except Err as e:
                    failure = message(e.value)
                    break
                except Failure as f:
                    failure = f.message
                    break
                still_open = write_all(out, lines.encode())
            closed = close_reporting(rows)
        if closed is None:
            closed = close_reporting(connection)
        else:
            close_quietly(connection)
    if failure is None:
        failure = closed
    written = still_open if failure is None else write_all(out, (error_json(failure) + "\n").encode())
    drop(out)
    finish(out_body, written)


def with_connection(work):
    """Opens a connection from the environment's configuration, runs `work` on it, and closes it
    whatever `work` did. The first failure is the one reported, as a 500."""
    options = connect_options()
    try:
        connection = Connection.open(options)
    except Err as e:
        raise Failure(500, message(e.value))
    with connection:
        failure, value = None, None
        try:
            value = work(connection)
        except Err as e:
            failure = Failure(500, message(e.value))
        except Failure as f:
            failure = f
        closed = close_reporting(connection)
    if failure:
        raise failure
    if closed is not None:
        raise Failure(500, closed)
    return value


def with_statement(connection, sql, work):
    """Prepares `sql`, runs `work` on the statement, and closes it whatever `work` did."""
    with connection.prepare(sql) as statement:
        try:
            value = work(statement)
        except Err:
            close_quietly(statement)
            raise
        statement.close()
    return value


def close_reporting(handle):
    """Closes a connection, statement or row stream; the error's message, or None."""
    try:
        handle.close()
    except Err as e:
        return message(e.value)
    return None


def close_quietly(handle):
    close_reporting(handle)
    return None


def message(error):
    """The text of a leashed:mysql error, as items-rust writes it too."""
    if isinstance(error, types.QueryError):
        error = error.error
    if isinstance(error, (types.Error_Server, types.Error_Auth)):
        return error.value.message
    if isinstance(error, types.Error_Io):
        return "socket error: " + socket_error(error.value)
    if isinstance(error, types.Error_Protocol):
        return "protocol error: " + error.value
    if isinstance(error, types.Error_Invalid):
        return "invalid: " + error.value
    return "connection closed"


SOCKET_ERRORS = {
    tcp.ErrorCode_Denied: "denied",
    tcp.ErrorCode_LimitReached: "limit-reached",
    tcp.ErrorCode_NameUnresolvable: "name-unresolvable",
    tcp.ErrorCode_ConnectionRefused: "connection-refused",
    tcp.ErrorCode_ConnectionReset: "connection-reset",
    tcp.ErrorCode_TimedOut: "timed-out",
    tcp.ErrorCode_Closed: "closed",
    tcp.ErrorCode_InvalidState: "invalid-state",
}


def socket_error(code):
    if isinstance(code, tcp.ErrorCode_Tls):
        return "tls: " + code.value
    if isinstance(code, tcp.ErrorCode_Other):
        return code.value
    return SOCKET_ERRORS[type(code)]


# --- configuration ------------------------------------------------------------------------------


def connect_options():
    """Connect options from the environment, or a Failure (500)."""
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        raise Failure(500, "DATABASE_URL is not set")
    host, port, user, password, database = parse_url(url)
    tls_mode = TLS_MODES.get(os.environ.get("MYSQL_TLS_MODE", ""))
    if tls_mode is None:
        raise Failure(500, "MYSQL_TLS_MODE must be one of disabled, preferred, required, verify-ca, verify-identity")
    return types.ConnectOptions(
        host=host,
        port=port,
        user=user,
        password=password,
        database=database,
        connect_timeout_ms=None,
        read_timeout_ms=None,
        write_timeout_ms=None,
        tls_mode=tls_mode,
        tls_ca_pem=os.environ.get("MYSQL_CA_PEM") or None,
        server_public_key_pem=None,
        allow_cleartext_password=False,
        charset=None,
        collation=None,
        autocommit=None,
        sql_mode=None,
        init_command=None,
        max_allowed_packet=None,
        local_infile=[],
    )


def parse_url(url):
    """mysql://USER[:PASSWORD]@HOST[:PORT][/DB] (or mariadb://), parsed exactly as items-rust's
    config.rs does: user, password and database are percent-decoded; [v6] is an IPv6 host."""

    def fail(text):
        raise Failure(500, text)

    for scheme in ("mysql://", "mariadb://"):
        if url.startswith(scheme):
            rest = url[len(scheme):]
            break
    else:
        fail(URL_SHAPE)
    if "?" in rest or "#" in rest:
        fail("DATABASE_URL has parameters, which are not supported")
    authority, _, path = rest.partition("/")
    if "@" not in authority:
        fail("DATABASE_URL has no user")
    userinfo, _, hostport = authority.rpartition("@")
    user, colon, password = userinfo.partition(":")
    user = decode(user)
    if not user:
        fail("DATABASE_URL has no user")
    password = (decode(password) or None) if colon else None
    if hostport.startswith("["):
        host, bracket, after = hostport[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            fail(URL_SHAPE)
        port = after[1:] if after else None
    else:
        host, colon, port = hostport.partition(":")
        port = port if colon else None
    if not host:
        fail("DATABASE_URL has no host")
    if port is None:
        port = DEFAULT_PORT
    elif 1 <= len(port) <= 5 and all("0" <= c <= "9" for c in port) and 0 < int(port) <= 65535:
        port = int(port)
    else:
        fail("DATABASE_URL has a bad port")
    if "/" in path:
        fail("DATABASE_URL has a bad database name")
    return host, port, user, password, decode(path) or None


def decode(text):
    """Percent-decoding: %XX is the byte XX, anything else stands for itself; must be UTF-8."""
    raw = text.encode("utf-8")
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] == 0x25:  # '%'
            digits = raw[i + 1:i + 3]
            if len(digits) != 2 or not all(c in b"0123456789abcdefABCDEF" for c in digits):
                raise Failure(500, BAD_ESCAPE)
            out.append(int(digits, 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise Failure(500, BAD_ESCAPE)
