"""items_http: the half of the items API that does not touch MySQL, shared by the Python
example plugins (items-python on the leashed client, items-pymysql on PyMySQL), so both answer
with the same status and the same body bytes as items-rust: routing, the request body, responses,
JSON as serde_json writes it, and DATABASE_URL parsed as items-rust's config.rs parses it.

A plugin calls `handle(request, response_out, backend)` from its incoming handler; `backend`
has get_item(id), create_item(name, price), list_items() and stream_items(response_out).
"""

import json

from componentize_py_types import Err, Ok
from wit_world.imports.streams import StreamError_Closed

# wasi:http/types is `types` in a world with no other `types` interface, `wasi_http_types` in
# the plugin world, which also imports leashed:mysql/types.
try:
    from wit_world.imports.wasi_http_types import (
        Fields, IncomingBody, Method_Get, Method_Post, OutgoingBody, OutgoingResponse, ResponseOutparam,
    )
except ImportError:
    from wit_world.imports.types import (
        Fields, IncomingBody, Method_Get, Method_Post, OutgoingBody, OutgoingResponse, ResponseOutparam,
    )

MAX_BODY = 64 * 1024  # the largest request body POST /items reads
WRITE_CHUNK = 4096  # blocking-write-and-flush takes at most 4096 bytes per call
DEFAULT_PORT = 3306

BAD_BODY = "body must be a JSON object with string fields name and price"
URL_SHAPE = "DATABASE_URL must look like mysql://USER:PASSWORD@HOST:PORT/DB"
BAD_ESCAPE = "DATABASE_URL has a bad percent-encoding"


class Failure(Exception):
    """A request that ends with {"error": message} and `status`."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def handle(request, response_out, backend):
    """Routes the request to `backend` and sends its answer, or the failure's."""
    try:
        with request:
            kind, arg = route(request)
        if kind == "get":
            send(response_out, *backend.get_item(arg))
        elif kind == "create":
            send(response_out, *backend.create_item(*arg))
        elif kind == "list":
            send(response_out, *backend.list_items())
        else:
            backend.stream_items(response_out)
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


# --- configuration ------------------------------------------------------------------------------


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
