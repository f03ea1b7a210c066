"""leashed_socket_errors: the errors leashed_socket raises. It owns the mapping from the
contract's `error-code` (leashed:net/tcp@0.2.0) onto the OSError subclass and errno Python
would raise for the same failure, and the one error for a part of socket/ssl that is not
covered (EOPNOTSUPP, naming it), so nothing is ever a silent no-op.
"""

import errno as _errno

EAI_NONAME = -2


class herror(OSError):
    pass


class gaierror(OSError):
    pass


def unsupported(what, why=""):
    """The error for a part of socket/ssl leashed_socket does not cover."""
    return OSError(_errno.EOPNOTSUPP, f"leashed_socket: {what} is not supported" + (f" ({why})" if why else ""))


def code_name(code):
    """'TimedOut' for the binding's ErrorCode_TimedOut."""
    return type(code).__name__.rpartition("_")[2]


# error-code -> (class, errno, text) where one class fits every operation.
_KNOWN = {
    "Denied": (PermissionError, _errno.EACCES, "the host's allowlist denies this address"),
    "LimitReached": (OSError, _errno.EMFILE, "the host's limit on connections or handles is reached"),
    "ConnectionRefused": (ConnectionRefusedError, _errno.ECONNREFUSED, "Connection refused"),
    "ConnectionReset": (ConnectionResetError, _errno.ECONNRESET, "Connection reset by peer"),
    "InvalidState": (OSError, _errno.EINVAL, "the call does not fit the connection's state"),
}


def os_error(code, op, where):
    """The OSError Python would raise for the contract's error `code` in `op` on `where`."""
    name, detail = code_name(code), getattr(code, "value", None)
    if name == "TimedOut":
        return TimeoutError("timed out")
    if name == "Tls":
        from leashed_ssl import SSLCertVerificationError, SSLError
        cls = SSLCertVerificationError if "certificate" in (detail or "").lower() else SSLError
        return cls(1, f"{detail} ({op} on {where})")
    if name == "NameUnresolvable":
        return gaierror(EAI_NONAME, f"Name or service not known ({where})")
    if name == "Closed":
        if op in ("send", "write"):
            return BrokenPipeError(_errno.EPIPE, f"Broken pipe: the connection to {where} was shut down or reclaimed")
        return OSError(_errno.EBADF, f"Bad file descriptor: the connection to {where} was shut down or reclaimed")
    cls, number, text = _KNOWN.get(name, (OSError, _errno.EIO, detail or name))
    return cls(number, f"{text} ({op} on {where})")
