"""items-pymysql: the items API of items-rust and items-python, written with PyMySQL from PyPI
(unmodified: DB-API, `%s` parameters, cursors, `with` blocks) on guest/python's leashed_socket.
World leashed:mysql/socket-plugin: it imports lent TCP connections (leashed:net/tcp) instead of
the leashed client, so `leashed serve` allows, limits and audits PyMySQL's own socket, reader and
writer per request, with PyMySQL's lines as their sites (leashed:net/sites).

It answers every request with the same status and body bytes as items-rust. Routing, bodies,
JSON and the URL are guest/plugins/items-common/items_http.py. A MySQL error is 500 with the
server's message; a socket error's text is PyMySQL's, not items-rust's.
"""

import os

os.environ.setdefault("USER", "leashed")  # PyMySQL calls getpass.getuser() on import

import leashed_socket  # noqa: E402  (at the top: componentize-py keeps what is imported at build time)

leashed_socket.install()

import sys  # noqa: E402

import items_http  # noqa: E402
import pymysql  # noqa: E402
import pymysql.cursors  # noqa: E402
from items_http import Failure, drop, error_json, finish, parse_url, start_response, to_json, write_all  # noqa: E402
from wit_world import exports  # noqa: E402

BATCH = 500  # rows per fetchmany when streaming
CA_FILE = "mysql-ca.pem"  # the name MYSQL_CA_PEM is given for PyMySQL's ssl={"ca": ...}

SELECT_ONE = "SELECT id, name, price FROM items WHERE id = %s"
SELECT_ALL = "SELECT id, name, price FROM items ORDER BY id"
INSERT = "INSERT INTO items (name, price) VALUES (%s, %s)"
TLS_MODES = ("", "preferred", "disabled", "required", "verify-ca", "verify-identity")


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request, response_out):
        items_http.handle(request, response_out, sys.modules[__name__])


def item(row):
    """`id, name, price` as an item, keys in that order; the price is the server's decimal text."""
    item_id, name, price = row
    return {"id": item_id, "name": name, "price": str(price)}


def get_item(item_id):
    with connect() as connection, connection.cursor() as cursor:
        cursor.execute(SELECT_ONE, (item_id,))
        row = cursor.fetchone()
    if row is None:
        return 404, error_json(f"no item {item_id}")
    return 200, to_json(item(row))


def create_item(name, price):
    with connect() as connection, connection.cursor() as cursor:
        cursor.execute(INSERT, (name, price))
        return 201, to_json({"id": cursor.lastrowid})


def list_items():
    with connect() as connection, connection.cursor() as cursor:
        cursor.execute(SELECT_ALL)
        return 200, to_json([item(row) for row in cursor.fetchall()])


def stream_items(response_out):
    """NDJSON written batch by batch from an unbuffered cursor. An error before the 200 is a 500;
    after it, the first error ends the body with a last {"error":"..."} line."""
    with connect() as connection, connection.cursor(pymysql.cursors.SSCursor) as cursor:
        cursor.execute(SELECT_ALL)
        out_body = start_response(response_out, 200, "application/x-ndjson")
        out = out_body.write()
        written, failure = True, None
        try:
            while written:
                batch = cursor.fetchmany(BATCH)
                if not batch:
                    break
                written = write_all(out, "".join(to_json(item(row)) + "\n" for row in batch).encode())
        except pymysql.MySQLError as e:
            failure = mysql_message(e)
        if failure is not None:
            written = write_all(out, (error_json(failure) + "\n").encode())
        drop(out)
        finish(out_body, written)


class connect:
    """A PyMySQL connection from the environment, for a `with` block: a MySQL error inside the
    block (or at connect) becomes a 500 with the server's message; the connection is closed on
    the way out whatever happened."""

    def __enter__(self):
        url = os.environ.get("DATABASE_URL", "")
        if not url:
            raise Failure(500, "DATABASE_URL is not set")
        host, port, user, password, database = parse_url(url)
        try:
            self.connection = pymysql.connect(host=host, port=port, user=user, password=password or "",
                                              database=database, autocommit=True, ssl=tls_settings())
        except pymysql.MySQLError as e:
            raise Failure(500, mysql_message(e)) from None
        return self.connection

    def __exit__(self, kind, error, traceback):
        try:
            self.connection.close()
        except pymysql.MySQLError:
            pass  # already closed by PyMySQL after a lost connection
        if isinstance(error, pymysql.MySQLError):
            raise Failure(500, mysql_message(error)) from None
        return False


def tls_settings():
    """PyMySQL's `ssl` argument for MYSQL_TLS_MODE and MYSQL_CA_PEM. PyMySQL upgrades to TLS
    whenever it has one and the server offers TLS, and goes on in plain text when the server does
    not: `required` is therefore `preferred` here (PyMySQL cannot insist)."""
    mode = os.environ.get("MYSQL_TLS_MODE", "")
    if mode not in TLS_MODES:
        raise Failure(500, "MYSQL_TLS_MODE must be one of disabled, preferred, required, verify-ca, verify-identity")
    if mode == "disabled":
        return None
    if mode in ("", "preferred", "required"):
        return {"check_hostname": False, "verify_mode": False}
    pem = os.environ.get("MYSQL_CA_PEM")
    if not pem:
        raise Failure(500, f"MYSQL_TLS_MODE={mode} needs MYSQL_CA_PEM")
    leashed_socket.add_ca_file(CA_FILE, pem)
    return {"ca": CA_FILE, "check_hostname": mode == "verify-identity"}


def mysql_message(error):
    """The server's message of a PyMySQL error ((code, message) in its args), else its text."""
    args = getattr(error, "args", ())
    return str(args[1]) if len(args) >= 2 else str(error)
