"""Unit tests of leashed_socket's and leashed_ssl's pure-Python logic, on plain CPython without wasm: timeouts,
the error mapping, the ssl context's verify modes and what is refused. What needs a lent
connection is tested end to end by tests/python_drivers.rs (which also runs this file).

    python3 guest/python/test_leashed_socket.py
"""

import errno
import os
import sys
import types
import unittest
from dataclasses import dataclass
from enum import Enum

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import leashed_socket as ls  # noqa: E402
import leashed_sites  # noqa: E402
import leashed_ssl  # noqa: E402


class FakeClock:
    """A monotonic clock that moves only when a read 'waits' one tick."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def ticking(clock, results):
    """An attempt that waits one tick per _TickElapsed, then returns the next result."""
    def attempt():
        item = results.pop(0)
        if item is ls._TickElapsed:
            clock.now += ls.READ_TICK_MS / 1000
            raise ls._TickElapsed()
        return item
    return attempt


class Timeouts(unittest.TestCase):
    def test_a_read_outlives_the_hosts_tick_until_the_sockets_timeout(self):
        """Ticks short of the socket's timeout are retried; the answer comes back."""
        clock = FakeClock()
        attempt = ticking(clock, [ls._TickElapsed] * 5 + [b"abc"])
        self.assertEqual(ls._wait_for(attempt, 1.0, clock), b"abc")

    def test_a_read_past_the_sockets_timeout_raises_socket_timeout(self):
        """As Python's: socket.timeout (TimeoutError) with 'timed out'."""
        clock = FakeClock()
        attempt = ticking(clock, [ls._TickElapsed] * 100)
        with self.assertRaises(ls.timeout) as raised:
            ls._wait_for(attempt, 0.35, clock)
        self.assertEqual(str(raised.exception), "timed out")
        self.assertAlmostEqual(clock.now, 0.4)  # honoured to within one tick

    def test_a_blocking_socket_never_times_out(self):
        clock = FakeClock()
        attempt = ticking(clock, [ls._TickElapsed] * 1000 + [b"late"])
        self.assertEqual(ls._wait_for(attempt, None, clock), b"late")

    def test_timeout_values_are_checked_as_python_checks_them(self):
        self.assertIsNone(ls._checked_timeout(None))
        self.assertEqual(ls._checked_timeout(3), 3.0)
        with self.assertRaises(ValueError):
            ls._checked_timeout(-1)
        with self.assertRaises(OSError) as raised:
            ls._checked_timeout(0)
        self.assertEqual(raised.exception.errno, errno.EOPNOTSUPP)
        self.assertIn("non-blocking", str(raised.exception))

    def test_the_timeout_at_connect_bounds_the_connect_and_reads_tick(self):
        tcp = types.SimpleNamespace(ConnectOptions=lambda **kw: kw)
        self.assertEqual(ls._connect_options(tcp, 10, True), {
            "connect_timeout_ms": 10000, "read_timeout_ms": ls.READ_TICK_MS, "write_timeout_ms": None, "nodelay": True})
        self.assertIsNone(ls._connect_options(tcp, None, False)["connect_timeout_ms"])

    def test_settimeout_and_gettimeout_before_connect(self):
        s = ls.socket()
        self.assertIsNone(s.gettimeout())
        s.settimeout(2.5)
        self.assertEqual(s.gettimeout(), 2.5)
        s.setblocking(True)
        self.assertIsNone(s.gettimeout())
        with self.assertRaises(OSError):
            s.setblocking(False)


# Classes named as componentize-py names the contract's error cases.
@dataclass
class ErrorCode_TimedOut:
    pass


@dataclass
class ErrorCode_Denied:
    pass


@dataclass
class ErrorCode_ConnectionRefused:
    pass


@dataclass
class ErrorCode_Closed:
    pass


@dataclass
class ErrorCode_NameUnresolvable:
    pass


@dataclass
class ErrorCode_Tls:
    value: str


class Errors(unittest.TestCase):
    def test_the_contracts_errors_become_the_ones_python_raises(self):
        where = "db:3306"
        self.assertIsInstance(ls._os_error(ErrorCode_TimedOut(), "recv", where), TimeoutError)
        refused = ls._os_error(ErrorCode_ConnectionRefused(), "connect", where)
        self.assertIsInstance(refused, ConnectionRefusedError)
        self.assertEqual(refused.errno, errno.ECONNREFUSED)
        denied = ls._os_error(ErrorCode_Denied(), "connect", where)
        self.assertIsInstance(denied, PermissionError)
        self.assertIn("allowlist", str(denied))
        self.assertIsInstance(ls._os_error(ErrorCode_NameUnresolvable(), "connect", where), ls.gaierror)
        self.assertIsInstance(ls._os_error(ErrorCode_Closed(), "send", where), BrokenPipeError)
        self.assertEqual(ls._os_error(ErrorCode_Closed(), "recv", where).errno, errno.EBADF)

    def test_a_refused_certificate_is_a_verification_error(self):
        bad = ls._os_error(ErrorCode_Tls("invalid peer certificate: UnknownIssuer"), "start-tls", "db:3306")
        self.assertIsInstance(bad, leashed_ssl.SSLCertVerificationError)
        self.assertIsInstance(bad, OSError)  # PyMySQL turns OSError into OperationalError
        other = ls._os_error(ErrorCode_Tls("handshake failed"), "start-tls", "db:3306")
        self.assertIs(type(other), leashed_ssl.SSLError)


class TlsVerify(Enum):
    NO_VERIFY = 0
    VERIFY_CA = 1
    VERIFY_IDENTITY = 2


FAKE_TCP = types.SimpleNamespace(TlsVerify=TlsVerify, TlsOptions=lambda **kw: kw)
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


class Ssl(unittest.TestCase):
    def test_pymysqls_context_with_a_ca_is_verify_identity(self):
        """What PyMySQL's _create_ssl_ctx does with ssl={"ca": path}."""
        ls.add_ca_file("ca.pem", PEM)
        ssl = leashed_ssl
        ctx = ssl.create_default_context(cafile="ca.pem", capath=None)
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.verify_flags &= ~ssl.VERIFY_X509_STRICT  # PyMySQL 1.1.2
        ctx.options |= ssl.OP_NO_SSLv2
        ctx.options |= ssl.OP_NO_SSLv3
        self.assertEqual(ctx.tls_options(FAKE_TCP, "localhost"),
                         {"server_name": "localhost", "verify": TlsVerify.VERIFY_IDENTITY, "ca_pem": PEM})

    def test_verify_modes_map_onto_the_contracts(self):
        self.assertEqual(leashed_ssl._tls_verify(leashed_ssl.CERT_NONE, False), "no-verify")
        self.assertEqual(leashed_ssl._tls_verify(leashed_ssl.CERT_REQUIRED, False), "verify-ca")
        self.assertEqual(leashed_ssl._tls_verify(leashed_ssl.CERT_OPTIONAL, False), "verify-ca")
        self.assertEqual(leashed_ssl._tls_verify(leashed_ssl.CERT_REQUIRED, True), "verify-identity")

    def test_context_rules_are_cpythons(self):
        ctx = leashed_ssl.SSLContext(leashed_ssl.PROTOCOL_TLS_CLIENT)
        with self.assertRaises(ValueError):
            ctx.verify_mode = leashed_ssl.CERT_NONE  # while check_hostname is on
        ctx.check_hostname = False
        ctx.verify_mode = leashed_ssl.CERT_NONE
        self.assertEqual(ctx.tls_options(FAKE_TCP, "db")["verify"], TlsVerify.NO_VERIFY)
        ctx.check_hostname = True  # turns verification back on, as CPython does
        self.assertEqual(ctx.verify_mode, leashed_ssl.CERT_REQUIRED)

    def test_verifying_without_a_ca_says_why(self):
        ctx = leashed_ssl.create_default_context()
        with self.assertRaises(leashed_ssl.SSLError) as raised:
            ctx.tls_options(FAKE_TCP, "db")
        self.assertIn("no system trust store", str(raised.exception))

    def test_what_start_tls_cannot_do_is_refused(self):
        ctx = leashed_ssl.create_default_context(cadata=PEM)
        for call in (lambda: ctx.load_cert_chain("client.pem"), lambda: ctx.set_ciphers("HIGH"),
                     lambda: ctx.load_verify_locations(capath="/etc/ssl/certs")):
            with self.assertRaises(OSError) as raised:
                call()
            self.assertEqual(raised.exception.errno, errno.EOPNOTSUPP)
        ctx.options |= leashed_ssl.OP_NO_TLSv1_2
        with self.assertRaises(OSError):
            ctx.tls_options(FAKE_TCP, "db")


class Refusals(unittest.TestCase):
    def test_unsupported_parts_raise_oserror_naming_them(self):
        cases = [
            (lambda: ls.socket(ls.AF_UNIX), "address family 1"),
            (lambda: ls.socket(type=ls.SOCK_DGRAM), "socket type 2"),
            (lambda: ls.socket().listen(5), "socket.listen"),
            (lambda: ls.socket().bind(("", 0)), "socket.bind"),
            (lambda: ls.socketpair(), "socket.socketpair"),
            (lambda: ls.create_connection(("db", 3306), 5, ("10.0.0.1", 0)), "source_address"),
            (lambda: ls.socket().setsockopt(ls.SOL_SOCKET, 2, 1), "socket option (1, 2)"),
            (lambda: ls.socket().detach(), "socket.detach()"),
        ]
        for call, named in cases:
            with self.assertRaises(OSError) as raised:
                call()
            self.assertEqual(raised.exception.errno, errno.EOPNOTSUPP, named)
            self.assertIn(named, str(raised.exception))
            self.assertIn("not supported", str(raised.exception))

    def test_an_unconnected_socket_is_not_connected(self):
        with self.assertRaises(OSError) as raised:
            ls.socket().makefile("rb")
        self.assertEqual(raised.exception.errno, errno.ENOTCONN)
        with self.assertRaises(ValueError):
            ls.socket().makefile("rx")

    def test_socket_options_before_connect(self):
        s = ls.socket()
        self.assertEqual(s.getsockopt(ls.IPPROTO_TCP, ls.TCP_NODELAY), 1)
        s.setsockopt(ls.IPPROTO_TCP, ls.TCP_NODELAY, 0)
        s.setsockopt(ls.SOL_SOCKET, ls.SO_KEEPALIVE, 1)
        self.assertEqual(s.getsockopt(ls.IPPROTO_TCP, ls.TCP_NODELAY), 0)
        self.assertEqual(s.getsockopt(ls.SOL_SOCKET, ls.SO_KEEPALIVE), 1)

    def test_install_replaces_socket_and_ssl(self):
        saved = {name: sys.modules.get(name) for name in ("socket", "ssl")}
        try:
            ls.install()
            import socket
            import ssl
            self.assertIs(socket.socket, ls.socket)
            self.assertIs(ssl.SSLContext, leashed_ssl.SSLContext)
            self.assertIs(socket.timeout, TimeoutError)
        finally:
            for name, module in saved.items():
                sys.modules[name] = module


class FakeSites:
    """leashed:net/sites as a host with (or without) its audit detail on."""

    def __init__(self, wanted):
        self._wanted, self.attached = wanted, []

    def wanted(self):
        return self._wanted

    def attach(self, frames):
        self.attached.append(frames)


def a_driver_closes(sock):
    """A caller outside leashed's modules, as PyMySQL's _force_close is."""
    sock.close()


class Sites(unittest.TestCase):
    def tearDown(self):
        leashed_sites.use(None)

    def test_a_drop_attaches_the_callers_frames_innermost_first(self):
        sites = FakeSites(wanted=True)
        leashed_sites.use(sites)
        handle = types.SimpleNamespace(__exit__=lambda *a: None)
        sock = ls.socket()
        sock._lease = ls._Lease(handle, "db:3306")
        a_driver_closes(sock)
        self.assertEqual(len(sites.attached), 1)  # the connection's drop; no stream was lent
        frames = sites.attached[0]
        self.assertRegex(frames[0], r"^test_leashed_socket\.py:\d+ a_driver_closes$")
        self.assertRegex(frames[1], r"^test_leashed_socket\.py:\d+ test_a_drop_attaches_the_callers_frames")
        self.assertFalse([f for f in frames if f.startswith(("leashed_socket.py", "leashed_sites.py"))], frames)
        self.assertLessEqual(len(frames), leashed_sites.MAX_FRAMES)

    def test_nothing_is_formatted_when_the_host_records_no_sites(self):
        sites = FakeSites(wanted=False)
        leashed_sites.use(sites)
        sock = ls.socket()
        sock._lease = ls._Lease(types.SimpleNamespace(__exit__=lambda *a: None), "db:3306")
        a_driver_closes(sock)
        self.assertEqual(sites.attached, [])

    def test_a_world_without_sites_attaches_nothing(self):
        leashed_sites.use(False)
        leashed_sites.attach_caller_frames()  # no bindings: a no-op, not an error

    def test_deep_stacks_keep_the_innermost_frames(self):
        def down(n):
            return leashed_sites.caller_frames(sys._getframe()) if n == 0 else down(n - 1)
        frames = down(200)
        self.assertEqual(len(frames), leashed_sites.MAX_FRAMES)
        self.assertTrue(all(f.endswith(" down") for f in frames), frames[:3])


if __name__ == "__main__":
    unittest.main()
