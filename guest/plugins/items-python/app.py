"""items-python: the example leashed plugin (world leashed:mysql/plugin) in Python, built with
componentize-py 0.25.1. It answers every request with the same status and the same body bytes as
guest/plugins/items-rust: a JSON API over a MySQL `items` table.

Routes: GET /items/{id}, POST /items, GET /items (a JSON array) and GET /items?stream=1 (NDJSON,
streamed batch by batch). Errors are {"error":"..."}. Configuration: DATABASE_URL
(mysql://USER:PASSWORD@HOST:PORT/DB), MYSQL_TLS_MODE, MYSQL_CA_PEM.

Every connection, statement and row stream is closed, then dropped (`with` releases the handle),
before `handle` returns: the host audits the sockets behind them right after. Routing, bodies,
JSON and the URL are guest/plugins/items-common/items_http.py, shared with items-pymysql.
"""

import os
import sys

from componentize_py_types import Err
from items_http import Failure, drop, error_json, finish, parse_url, start_response, to_json, write_all
from wit_world import exports
from wit_world.imports import leashed_mysql_types as types
from wit_world.imports import tcp
from wit_world.imports.connection import Connection

import items_http

BATCH = 500  # rows per next-batch call when streaming

SELECT_ONE = "SELECT id, name, price FROM items WHERE id = ?"
SELECT_ALL = "SELECT id, name, price FROM items ORDER BY id"
INSERT = "INSERT INTO items (name, price) VALUES (?, ?)"

TLS_MODES = {
    "": types.TlsMode.PREFERRED,
    "preferred": types.TlsMode.PREFERRED,
    "disabled": types.TlsMode.DISABLED,
    "required": types.TlsMode.REQUIRED,
    "verify-ca": types.TlsMode.VERIFY_CA,
    "verify-identity": types.TlsMode.VERIFY_IDENTITY,
}


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request, response_out):
        items_http.handle(request, response_out, sys.modules[__name__])


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
