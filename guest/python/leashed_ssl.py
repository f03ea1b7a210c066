"""leashed_ssl: the client side of Python's `ssl` on `leashed:net/tcp@0.2.0`: an SSLContext
whose `wrap_socket` upgrades a leashed_socket connection in place with the contract's `start-tls`,
mapping `verify_mode`/`check_hostname` and the loaded CA certificates onto its verify modes.
leashed_socket.install() makes it `ssl`. It must not pretend: what start-tls cannot do raises
OSError saying so (see README.md).
"""

import leashed_socket as _socket

CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED = 0, 1, 2
PROTOCOL_TLS, PROTOCOL_TLS_CLIENT, PROTOCOL_TLS_SERVER = 2, 16, 17
OP_ALL, OP_NO_COMPRESSION = 0x80000050, 0x20000
OP_NO_SSLv2, OP_NO_SSLv3, OP_NO_TLSv1, OP_NO_TLSv1_1 = 0, 0x2000000, 0x4000000, 0x10000000
OP_NO_TLSv1_2, OP_NO_TLSv1_3 = 0x8000000, 0x20000000
VERIFY_DEFAULT, VERIFY_X509_STRICT, VERIFY_X509_PARTIAL_CHAIN, VERIFY_X509_TRUSTED_FIRST = 0, 0x20, 0x80000, 0x8000
VERIFY_CRL_CHECK_LEAF, VERIFY_CRL_CHECK_CHAIN = 4, 12
# What the host's TLS (rustls, TLS 1.2 and 1.3) does anyway, or what only makes OpenSSL stricter.
_HARMLESS_OPTIONS = OP_ALL | OP_NO_COMPRESSION | OP_NO_SSLv2 | OP_NO_SSLv3 | OP_NO_TLSv1 | OP_NO_TLSv1_1
_HARMLESS_FLAGS = VERIFY_X509_STRICT | VERIFY_X509_PARTIAL_CHAIN | VERIFY_X509_TRUSTED_FIRST


class SSLError(OSError):
    pass


class SSLCertVerificationError(SSLError, ValueError):
    pass


class SSLZeroReturnError(SSLError):
    pass


class SSLEOFError(SSLError):
    pass


class Purpose:
    SERVER_AUTH = "1.3.6.1.5.5.7.3.1"
    CLIENT_AUTH = "1.3.6.1.5.5.7.3.2"


def _tls_verify(verify_mode, check_hostname):
    """The contract's verify mode ('no-verify', 'verify-ca', 'verify-identity') for an
    SSLContext's verify_mode and check_hostname."""
    if verify_mode == CERT_NONE:
        return "no-verify"
    return "verify-identity" if check_hostname else "verify-ca"


class SSLContext:
    """The client side of ssl.SSLContext; wrap_socket runs the contract's start-tls."""

    def __init__(self, protocol=PROTOCOL_TLS_CLIENT):
        if protocol not in (PROTOCOL_TLS, PROTOCOL_TLS_CLIENT):
            raise _socket._unsupported(f"SSLContext protocol {protocol}", "a leashed guest is a TLS client only")
        self.protocol = protocol
        client = protocol == PROTOCOL_TLS_CLIENT
        self._check_hostname, self._verify_mode = client, CERT_REQUIRED if client else CERT_NONE
        self.options = OP_ALL | OP_NO_SSLv2 | OP_NO_SSLv3 | OP_NO_COMPRESSION
        self.verify_flags = VERIFY_X509_PARTIAL_CHAIN | VERIFY_X509_STRICT
        self._ca_pem = []

    @property
    def check_hostname(self):
        return self._check_hostname

    @check_hostname.setter
    def check_hostname(self, value):
        if value and self._verify_mode == CERT_NONE:
            self._verify_mode = CERT_REQUIRED
        self._check_hostname = bool(value)

    @property
    def verify_mode(self):
        return self._verify_mode

    @verify_mode.setter
    def verify_mode(self, value):
        if value == CERT_NONE and self._check_hostname:
            raise ValueError("Cannot set verify_mode to CERT_NONE when check_hostname is enabled.")
        if value not in (CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED):
            raise ValueError("invalid value for verify_mode")
        self._verify_mode = value

    def load_verify_locations(self, cafile=None, capath=None, cadata=None):
        if cafile is None and capath is None and cadata is None:
            raise TypeError("cafile, capath and cadata cannot be all omitted")
        if capath is not None:
            raise _socket._unsupported("load_verify_locations(capath=...)", "give the CAs as cafile or cadata")
        if cafile is not None:
            path = str(cafile)
            if path in _socket._ca_files:
                self._ca_pem.append(_socket._ca_files[path])
            else:
                with open(path, encoding="ascii") as f:  # FileNotFoundError, as CPython, without a file system
                    self._ca_pem.append(f.read())
        if cadata is not None:
            if not isinstance(cadata, str):
                raise _socket._unsupported("cadata in DER form", "give PEM text")
            self._ca_pem.append(cadata)

    def load_default_certs(self, purpose=Purpose.SERVER_AUTH):
        # A component has no system trust store: nothing to load. wrap_socket refuses to verify
        # without a CA, saying so.
        pass

    set_default_verify_paths = load_default_certs

    def load_cert_chain(self, certfile, keyfile=None, password=None):
        raise _socket._unsupported("client certificates (load_cert_chain)", "leashed:net/tcp@0.2.0 start-tls has none")

    def set_ciphers(self, ciphers):
        raise _socket._unsupported("set_ciphers", "the host's TLS picks the cipher suites")

    def set_alpn_protocols(self, protocols):
        raise _socket._unsupported("ALPN", "leashed:net/tcp@0.2.0 start-tls negotiates none")

    def tls_options(self, tcp, server_name):
        """The contract's tls-options for a handshake with `server_name`."""
        if self.options & ~_HARMLESS_OPTIONS:
            raise _socket._unsupported(f"SSLContext.options {self.options:#x}", "the host's TLS speaks TLS 1.2 and 1.3")
        if self.verify_flags & ~_HARMLESS_FLAGS:
            raise _socket._unsupported(f"SSLContext.verify_flags {self.verify_flags:#x}", "no CRL checks in start-tls")
        verify = _tls_verify(self._verify_mode, self._check_hostname)
        if verify != "no-verify" and not self._ca_pem:
            raise SSLError(1, "leashed_socket: verifying the server needs CA certificates, and a component has no "
                              "system trust store: load_verify_locations(cadata=PEM) or leashed_socket.add_ca_file")
        mode = {"no-verify": tcp.TlsVerify.NO_VERIFY, "verify-ca": tcp.TlsVerify.VERIFY_CA,
                "verify-identity": tcp.TlsVerify.VERIFY_IDENTITY}[verify]
        ca = "\n".join(self._ca_pem) if self._ca_pem else None
        return tcp.TlsOptions(server_name=server_name, verify=mode, ca_pem=ca)

    def wrap_socket(self, sock, server_side=False, do_handshake_on_connect=True, suppress_ragged_eofs=True,
                    server_hostname=None, session=None):
        if server_side:
            raise _socket._unsupported("server-side TLS", "a leashed guest is a TLS client only")
        if session is not None:
            raise _socket._unsupported("TLS session resumption")
        if not isinstance(sock, _socket.socket) or isinstance(sock, SSLSocket):
            raise TypeError("wrap_socket needs a connected leashed_socket.socket")
        if self._check_hostname and not server_hostname:
            raise ValueError("check_hostname requires server_hostname")
        tcp, _ = _socket._tcp()
        lease = sock._live_lease()
        options = self.tls_options(tcp, server_hostname or sock._host)
        wrapped = SSLSocket(sock.family, sock.type, sock.proto)
        wrapped._timeout, wrapped._nodelay, wrapped._keepalive = sock._timeout, sock._nodelay, sock._keepalive
        wrapped._host, wrapped._fileno, wrapped.context = sock._host, sock._fileno, self
        wrapped.server_hostname = server_hostname
        wrapped._lease = sock._detach_lease()
        lease.pending_tls = options
        if do_handshake_on_connect:
            try:
                wrapped.do_handshake()
            except BaseException:
                wrapped.close()  # as CPython's SSLSocket does when the handshake fails
                raise
        return wrapped


class SSLSocket(_socket.socket):
    """A socket after wrap_socket: the same lent connection, upgraded by start-tls."""

    context = None
    server_hostname = None

    def do_handshake(self, block=False):
        self._live_lease().ensure_tls()

    def getpeercert(self, binary_form=False):
        raise _socket._unsupported("SSLSocket.getpeercert", "start-tls does not show the certificate; the host verified it")

    def cipher(self):
        raise _socket._unsupported("SSLSocket.cipher", "start-tls does not say which cipher the host's TLS chose")

    def version(self):
        raise _socket._unsupported("SSLSocket.version", "start-tls does not say which TLS version the host's TLS chose")

    def selected_alpn_protocol(self):
        return None  # no ALPN is ever offered

    def unwrap(self):
        raise _socket._unsupported("SSLSocket.unwrap", "start-tls cannot be undone")


def create_default_context(purpose=Purpose.SERVER_AUTH, *, cafile=None, capath=None, cadata=None):
    if purpose != Purpose.SERVER_AUTH:
        raise _socket._unsupported("a server-side default context", "a leashed guest is a TLS client only")
    context = SSLContext(PROTOCOL_TLS_CLIENT)
    if cafile or capath or cadata:
        context.load_verify_locations(cafile, capath, cadata)
    return context


CertificateError = SSLCertVerificationError
HAS_SNI = True
OPENSSL_VERSION = "leashed:net/tcp@0.2.0 start-tls (the host's TLS)"

SSLSocketType = SSLSocket
PROTOCOL_SSLv23 = PROTOCOL_TLS
