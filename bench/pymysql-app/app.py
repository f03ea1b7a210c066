"""pymysql-app (bench): PyMySQL from PyPI, unmodified, on sockets leashed lends (world
leashed:bench/pymysql-bench, componentize-py). bench/build.rs builds it with PyMySQL 1.1.2's
`pymysql/` and guest/python's `leashed_*.py` next to this file.

It keeps one connection open across calls; `block` runs the same operations as the native
PyMySQL driver of bench/src/pymysql.rs, and the host times each call. It does no timing itself.
"""

import os

# PyMySQL calls getpass.getuser() when it is imported, and a component has no user database.
os.environ.setdefault("USER", "leashed")

import leashed_socket

leashed_socket.install()

from urllib.parse import unquote, urlsplit

import pymysql
import wit_world
from componentize_py_types import Err

# The connection `open_session` made and `block` uses, and what `connect` opens again; kept at
# module level, since an instance keeps them across calls.
_conn = None
_params = None


def _connect():
    return pymysql.connect(**_params)


def _fetch_all(sql):
    with _conn.cursor() as cursor:
        cursor.execute(sql)
        return len(cursor.fetchall())


class WitWorld(wit_world.WitWorld):
    def open_session(self, url):
        global _conn, _params
        parts = urlsplit(url)
        _params = dict(
            host=parts.hostname, port=parts.port or 3306, user=unquote(parts.username or ""),
            password=unquote(parts.password or ""), database=parts.path.lstrip("/") or None, ssl_disabled=True,
        )
        try:
            _conn = _connect()
        except Exception as e:
            raise Err(f"{type(e).__name__}: {e}")

    def block(self, workload, ops, sql):
        if _conn is None:
            raise Err("no connection: call open-session first")
        fetched = 0
        try:
            if workload == "select1":
                for _ in range(ops):
                    fetched = _fetch_all("SELECT 1")
            elif workload == "rows":
                for _ in range(ops):
                    fetched = _fetch_all(sql)
            elif workload == "connect":
                for _ in range(ops):
                    _connect().close()
            else:
                raise Err(f"unknown workload {workload!r} (select1, rows or connect)")
        except Err:
            raise
        except Exception as e:
            raise Err(f"{type(e).__name__}: {e}")
        return fetched

    def close_session(self):
        global _conn
        if _conn is not None:
            _conn.close()
            _conn = None
