"""leashed_socket: the part of Python's `socket` (and, with leashed_ssl, of `ssl`) that pure-Python
network clients use (PyMySQL and the like), on TCP connections a leashed host lends through
`leashed:net/tcp@0.2.0`.

It owns the mapping from Python's socket semantics onto the contract; it must not hide a handle
from the host: every lend and every drop goes through `_lend` and `_drop`, and `close()` drops
the connection when the code closes the socket, so the host's close policy judges what a live
`makefile()` stream means. What it does not cover raises OSError saying so (see README.md).
"""

import errno as _errno
import io as _io
import sys as _sys
import time as _time
import weakref as _weakref

import leashed_sites as _leashed_sites
from leashed_socket_errors import EAI_NONAME, gaierror, herror  # noqa: F401 (socket's names)
from leashed_socket_errors import code_name as _code_name
from leashed_socket_errors import os_error as _os_error
from leashed_socket_errors import unsupported as _unsupported
from leashed_socketio import SocketIO

# Constants drivers import, with Linux's values.
AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10
SOCK_STREAM, SOCK_DGRAM = 1, 2
IPPROTO_IP, IPPROTO_TCP = 0, 6
SOL_SOCKET, SO_KEEPALIVE, TCP_NODELAY = 1, 9, 1
SHUT_RD, SHUT_WR, SHUT_RDWR = 0, 1, 2
has_ipv6 = True
_GLOBAL_DEFAULT_TIMEOUT = object()

error = OSError
timeout = TimeoutError  # socket.timeout, as in Python 3.10+


# Reads ask the host to give up after this long and retry until the socket's own timeout has
# passed: the contract fixes a connection's read timeout when it connects, Python lets the code
# change it at any time. A read's timeout is therefore honoured to within one tick.
READ_TICK_MS = 100
# What one host call reads or writes at most (the host serves at most 1 MiB per read).
_CHUNK = 1 << 20

_default_timeout = None
_bindings = None  # (the tcp bindings module, componentize_py_types.Err), found at first use
_ca_files = {}  # path -> PEM text, for guests without a file system


def install(tcp=None, ca_files=None, sites=None):
    """Makes `import socket` give this module and `import ssl` give leashed_ssl, for code
    imported after this call. `tcp` is the bindings module of leashed:net/tcp and `sites` that
    of leashed:net/sites (both found in `wit_world.imports` when not given; a world without
    sites works, its audit shows no Python frames); `ca_files` maps paths to PEM text that
    `cafile=` arguments may name (a component has no file system)."""
    global _bindings
    if sites is not None:
        _leashed_sites.use(sites)
    if tcp is not None:
        from componentize_py_types import Err
        _bindings = (tcp, Err)
    for path, pem in (ca_files or {}).items():
        add_ca_file(path, pem)
    import leashed_ssl
    _sys.modules["socket"] = _sys.modules[__name__]
    _sys.modules["ssl"] = leashed_ssl


def add_ca_file(path, pem):
    """Lets `cafile=path` (e.g. PyMySQL's `ssl={"ca": path}`) load `pem`."""
    _ca_files[str(path)] = pem


# The bindings of leashed:net/tcp, looked up when this module is imported: a componentize-py
# component holds only the modules imported while it was built (import this module at the top of
# the app, not inside a handler).
try:
    from wit_world.imports import tcp as _world_tcp
except ImportError:
    try:
        from wit_world.imports import leashed_net_tcp as _world_tcp
    except ImportError:
        _world_tcp = None


def _tcp():
    global _bindings
    if _bindings is None:
        if _world_tcp is None or not hasattr(getattr(_world_tcp, "Connection", None), "start_tls"):
            raise OSError(_errno.ENOSYS, "leashed_socket: no bindings of leashed:net/tcp@0.2.0 in wit_world.imports; "
                          "build the component against a world that imports it, or pass install(tcp=...)")
        from componentize_py_types import Err
        _bindings = (_world_tcp, Err)
    return _bindings


# --- lends, drops and host calls ---------------------------------------------------------------

def _lend(kind, make):
    """Every handle this module is lent ('connection', 'reader', 'writer') comes through here:
    `make()` is the one host call that lends it, and the host records the lend's site during it,
    with the Python frames attached just before (leashed_sites)."""
    _leashed_sites.attach_caller_frames()
    return make()


def _drop(kind, handle):
    """Every handle this module gives back comes through here, at once (not when the garbage
    collector finds it): the binding's `__exit__` drops the resource, and the host records the
    drop's site during it, with the Python frames attached just before."""
    _leashed_sites.attach_caller_frames()
    handle.__exit__(None, None, None)


def _call(op, where, fn, *args):
    """Calls the host, turning the contract's error into Python's."""
    _, Err = _tcp()
    try:
        return fn(*args)
    except Err as e:
        raise _os_error(e.value, op, where) from None


class _TickElapsed(Exception):
    """The host's read timeout (one tick) passed; the socket's own may not have."""


def _wait_for(attempt, timeout, clock=_time.monotonic):
    """Runs `attempt` until it does not raise _TickElapsed; raises TimeoutError once `timeout`
    seconds (None: never) have passed, as a Python socket's timeout does."""
    deadline = None if timeout is None else clock() + timeout
    while True:
        try:
            return attempt()
        except _TickElapsed:
            if deadline is not None and clock() >= deadline:
                raise TimeoutError("timed out") from None


def _checked_timeout(value):
    """A socket timeout as Python validates it; 0 (non-blocking) is not covered."""
    if value is None:
        return None
    value = float(value)
    if value < 0:
        raise ValueError("Timeout value out of range")
    if value == 0:
        raise _unsupported("a non-blocking socket (timeout 0)", "every call on a lent connection blocks")
    return value


def _connect_options(tcp, timeout, nodelay):
    """The contract's options for a socket whose timeout is `timeout` when it connects: that
    timeout bounds the connect (None: the host's default); reads tick (see READ_TICK_MS); writes
    get the host's write timeout, since a write that timed out cannot be retried."""
    ms = None if timeout is None else max(1, int(timeout * 1000))
    return tcp.ConnectOptions(connect_timeout_ms=ms, read_timeout_ms=READ_TICK_MS, write_timeout_ms=None,
                              nodelay=nodelay)


# --- the lent connection ------------------------------------------------------------------------

class _Lease:
    """One lent connection, shared by a socket and the SSLSocket that wraps it, with the streams
    it has lent: the socket's own (for send/recv) or a makefile()'s (the file is the owner)."""

    def __init__(self, handle, where):
        self.handle, self.where = handle, where
        self.streams = {"reader": None, "writer": None}  # kind -> (handle, owner or None)
        self.pending_tls = None

    def own(self, kind):
        """The stream send/recv use: a makefile()'s if one is lent (they share the connection's
        bytes, as on an OS socket), else the socket's own, lent at its first use."""
        if self.streams[kind] is None:
            self.streams[kind] = (self.lend(kind), None)
        return self.streams[kind][0]

    def lend_to(self, kind, owner):
        """Lends a stream to a makefile(); the socket's own is given back first."""
        current = self.streams[kind]
        if current is not None and current[1] is not None:
            raise OSError(_errno.EBUSY, f"leashed_socket: a makefile() of {self.where} still holds its {kind}; "
                          f"leashed:net lends one {kind} per connection at a time, so close that file first")
        if current is not None:
            self.give_back(kind)
        handle = self.lend(kind)
        self.streams[kind] = (handle, owner)
        return handle

    def lend(self, kind):
        self.ensure_tls()
        method = self.handle.reader if kind == "reader" else self.handle.writer
        return _lend(kind, lambda: _call(f"lending a {kind}", self.where, method))

    def give_back(self, kind, owner=None):
        current = self.streams[kind]
        if current is not None and current[1] is owner:
            self.streams[kind] = None
            _drop(kind, current[0])

    def close(self):
        """socket.close(): the socket's own streams (writer first), then the connection, whatever
        makefile() streams still live: the host's close policy decides about those."""
        self.give_back("writer")
        self.give_back("reader")
        handle, self.handle = self.handle, None
        _drop("connection", handle)

    def ensure_tls(self):
        if self.pending_tls is not None:
            options, self.pending_tls = self.pending_tls, None
            _call("start-tls", self.where, self.handle.start_tls, options)

    def read(self, handle, size, timeout):
        self.ensure_tls()
        _, Err = _tcp()

        def attempt():
            try:
                return handle.read(max(1, min(size, _CHUNK)))
            except Err as e:
                if _code_name(e.value) == "TimedOut":
                    raise _TickElapsed() from None
                raise _os_error(e.value, "recv", self.where) from None
        return _wait_for(attempt, timeout)

    def write(self, handle, data):
        self.ensure_tls()
        view = memoryview(data).cast("B")
        for start in range(0, len(view), _CHUNK):
            _call("send", self.where, handle.write, bytes(view[start:start + _CHUNK]))


# --- socket -------------------------------------------------------------------------------------

class socket:
    """A TCP socket whose connection the host lends. See README.md for what is covered."""

    _next_fileno = [1000]

    def __init__(self, family=AF_INET, type=SOCK_STREAM, proto=0, fileno=None):
        if fileno is not None:
            raise _unsupported("socket(fileno=...)", "a component has no OS descriptors")
        if family not in (AF_INET, AF_INET6):
            raise _unsupported(f"address family {family}", "only AF_INET/AF_INET6 TCP connections are lent")
        if type != SOCK_STREAM:
            raise _unsupported(f"socket type {type}", "only SOCK_STREAM connections are lent")
        self.family, self.type, self.proto = family, type, proto
        self._timeout = _default_timeout
        self._nodelay, self._keepalive = True, 0
        self._lease, self._closed, self._fileno, self._host = None, False, -1, None
        self._files = _weakref.WeakSet()

    def __repr__(self):
        state = "closed" if self._closed else (self._lease.where if self._lease else "unconnected")
        return f"<leashed_socket.{type(self).__name__} fd={self._fileno} {state}>"

    def __enter__(self):
        return self

    def __exit__(self, *args):
        self.close()

    def _live_lease(self):
        if self._closed:
            raise OSError(_errno.EBADF, "Bad file descriptor")
        if self._lease is None:
            raise OSError(_errno.ENOTCONN, "Transport endpoint is not connected")
        return self._lease

    def connect(self, address):
        if self._closed:
            raise OSError(_errno.EBADF, "Bad file descriptor")
        if self._lease is not None:
            raise OSError(_errno.EISCONN, "Transport endpoint is already connected")
        host, port = address[0], int(address[1])
        if not isinstance(host, str) or not host:
            raise gaierror(EAI_NONAME, "Name or service not known")
        tcp, _ = _tcp()
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        options = _connect_options(tcp, self._timeout, self._nodelay)
        handle = _lend("connection", lambda: _call("connect", where, tcp.Connection.connect, host, port, options))
        self._lease = _Lease(handle, where)
        self._host = host
        socket._next_fileno[0] += 1
        self._fileno = socket._next_fileno[0]
        peer = self.getpeername()[0]
        self.family = AF_INET6 if ":" in peer else AF_INET

    def connect_ex(self, address):
        try:
            self.connect(address)
        except OSError as e:
            return e.errno or _errno.EIO
        return 0

    def close(self):
        """Python's meaning: the code is done with the socket. The connection is dropped now,
        even while a makefile() stream lives; the host's close policy decides what that means."""
        if self._closed:
            return
        self._closed = True
        lease, self._lease = self._lease, None
        self._fileno = -1
        if lease is not None:
            lease.close()

    def __del__(self):
        if not getattr(self, "_closed", True) and getattr(self, "_lease", None) is not None:
            self.close()

    def _detach_lease(self):
        """For ssl wrap_socket: the lease moves to the new socket; this one is closed, and its
        files no longer reach the connection (CPython's detach())."""
        lease, self._lease = self._live_lease(), None
        for f in list(self._files):
            f._detach_from_socket()
        self._closed, self._fileno = True, -1
        return lease

    def detach(self):
        raise _unsupported("socket.detach()", "a component has no OS descriptors to hand out")

    def fileno(self):
        """A number for this connection, unique in the instance; -1 once closed. It is not an OS
        descriptor: select/poll cannot wait on it."""
        return self._fileno

    def makefile(self, mode="r", buffering=None, *, encoding=None, errors=None, newline=None):
        if not set(mode) <= {"r", "w", "b"}:
            raise ValueError(f"invalid mode {mode!r} (only r, w, b allowed)")
        writing = "w" in mode
        reading = "r" in mode or not writing
        binary = "b" in mode
        raw = SocketIO(self, ("r" if reading else "") + ("w" if writing else ""))
        buffering = _io.DEFAULT_BUFFER_SIZE if buffering is None or buffering < 0 else buffering
        if buffering == 0:
            if not binary:
                raise ValueError("unbuffered streams must be binary")
            return raw
        if reading and writing:
            buffer = _io.BufferedRWPair(raw, raw, buffering)
        elif reading:
            buffer = _io.BufferedReader(raw, buffering)
        else:
            buffer = _io.BufferedWriter(raw, buffering)
        if binary:
            return buffer
        text = _io.TextIOWrapper(buffer, _io.text_encoding(encoding), errors, newline)
        text.mode = mode
        return text

    def _no_flags(self, flags, call):
        if flags:
            raise _unsupported(f"socket.{call} with flags {flags}")

    def send(self, data, flags=0):
        self._no_flags(flags, "send")
        lease = self._live_lease()
        lease.write(lease.own("writer"), data)
        return len(memoryview(data).cast("B"))

    def sendall(self, data, flags=0):
        self.send(data, flags)

    def recv(self, bufsize, flags=0):
        self._no_flags(flags, "recv")
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        if bufsize == 0:
            return b""
        lease = self._live_lease()
        return lease.read(lease.own("reader"), bufsize, self._timeout)

    def recv_into(self, buffer, nbytes=0, flags=0):
        view = memoryview(buffer).cast("B")
        nbytes = nbytes or len(view)
        data = self.recv(min(nbytes, len(view)), flags)
        view[:len(data)] = data
        return len(data)

    def shutdown(self, how):
        tcp, _ = _tcp()
        kinds = {SHUT_RD: tcp.ShutdownType.RECEIVE, SHUT_WR: tcp.ShutdownType.SEND, SHUT_RDWR: tcp.ShutdownType.BOTH}
        if how not in kinds:
            raise OSError(_errno.EINVAL, "Invalid argument")
        lease = self._live_lease()
        _call("shutdown", lease.where, lease.handle.shutdown, kinds[how])

    def _address(self, method, op):
        lease = self._live_lease()
        a = _call(op, lease.where, getattr(lease.handle, method))
        return (a.address, a.port, 0, 0) if ":" in a.address else (a.address, a.port)

    def getpeername(self):
        return self._address("peer_address", "getpeername")

    def getsockname(self):
        return self._address("local_address", "getsockname")

    def settimeout(self, value):
        self._timeout = _checked_timeout(value)

    def gettimeout(self):
        return self._timeout

    def setblocking(self, flag):
        self.settimeout(None if flag else 0.0)

    def getblocking(self):
        return self._timeout != 0.0

    def setsockopt(self, level, optname, value, optlen=None):
        if optlen is not None or not isinstance(value, int):
            raise _unsupported("setsockopt with a buffer value")
        if (level, optname) == (IPPROTO_TCP, TCP_NODELAY):
            if self._lease is not None and bool(value) != self._nodelay:
                raise _unsupported("changing TCP_NODELAY after connect()",
                                  "leashed:net sets it when it connects; set it before connect()")
            self._nodelay = bool(value)
        elif (level, optname) == (SOL_SOCKET, SO_KEEPALIVE):
            # Accepted and recorded: leashed:net/tcp@0.2.0 has no keepalive option; the host's
            # socket settings apply (README.md says so).
            self._keepalive = 1 if value else 0
        else:
            raise _unsupported(f"socket option ({level}, {optname})", "only TCP_NODELAY and SO_KEEPALIVE are covered")

    def getsockopt(self, level, optname, buflen=None):
        if buflen is not None:
            raise _unsupported("getsockopt with a buffer length")
        if (level, optname) == (IPPROTO_TCP, TCP_NODELAY):
            return int(self._nodelay)
        if (level, optname) == (SOL_SOCKET, SO_KEEPALIVE):
            return self._keepalive
        raise _unsupported(f"socket option ({level}, {optname})", "only TCP_NODELAY and SO_KEEPALIVE are covered")


def _not_covered(name, why):
    def call(*args, **kwargs):
        raise _unsupported(name, why)
    call.__name__ = name.rpartition(".")[2]
    return call


for _name in ("bind", "listen", "accept", "sendto", "recvfrom", "recvfrom_into", "sendmsg", "recvmsg",
              "sendfile", "dup", "set_inheritable", "ioctl"):
    setattr(socket, _name, _not_covered(f"socket.{_name}", "a leashed host lends outbound TCP connections only"))

SocketType = socket


def create_connection(address, timeout=_GLOBAL_DEFAULT_TIMEOUT, source_address=None, *, all_errors=False):
    """Python's create_connection; the host resolves the name and tries its addresses."""
    if source_address is not None:
        raise _unsupported("create_connection(source_address=...)", "the host binds the local address")
    host, port = address
    sock = socket(AF_INET6 if ":" in str(host) else AF_INET, SOCK_STREAM)
    if timeout is not _GLOBAL_DEFAULT_TIMEOUT:
        sock.settimeout(timeout)
    try:
        sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    """One entry holding the name itself: the host resolves names (and checks every address
    against its allowlist) when it connects, so the guest never sees them resolved."""
    if host is None:
        raise gaierror(EAI_NONAME, "Name or service not known")
    fam = family or (AF_INET6 if ":" in str(host) else AF_INET)
    return [(fam, SOCK_STREAM, IPPROTO_TCP, "", (host, int(port)))]


def getdefaulttimeout():
    return _default_timeout


def setdefaulttimeout(value):
    global _default_timeout
    _default_timeout = _checked_timeout(value)


for _name, _why in (("socketpair", "a leashed host lends outbound TCP connections only"),
                    ("fromfd", "a component has no OS descriptors"),
                    ("create_server", "a leashed host lends outbound TCP connections only"),
                    ("gethostbyname", "the host resolves names when it connects"),
                    ("gethostbyname_ex", "the host resolves names when it connects"),
                    ("gethostbyaddr", "the host resolves names when it connects"),
                    ("gethostname", "a component has no host name")):
    globals()[_name] = _not_covered(f"socket.{_name}", _why)
del _name, _why
