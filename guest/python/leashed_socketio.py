"""leashed_socketio: the raw stream under leashed_socket's `makefile()`. It owns one file's
streams: it lends its own reader and/or writer from the socket's connection when it is made and
gives them back when it is closed (close(), or CPython freeing the file), so a file that outlives
its socket's close() is exactly what the host's close policy judges.
"""

import errno as _errno
import io as _io


class SocketIO(_io.RawIOBase):
    """The raw stream under makefile(): it lends its own reader and/or writer, and gives them
    back when it is closed (close(), or CPython freeing the file)."""

    def __init__(self, sock, mode):
        super().__init__()
        self._sock, self._mode = sock, mode
        self._reading, self._writing = "r" in mode, "w" in mode
        self._timed_out = self._cut = False
        lease = sock._live_lease()
        if self._reading:
            lease.lend_to("reader", self)
        if self._writing:
            try:
                lease.lend_to("writer", self)
            except BaseException:
                lease.give_back("reader", self)
                raise
        self._lease = lease
        sock._files.add(self)

    def _handle(self, kind):
        self._checkClosed()
        if self._cut:
            raise OSError(_errno.EBADF, "Bad file descriptor (the socket was detached, e.g. by ssl wrap_socket)")
        entry = self._lease.streams[kind]
        if entry is None or entry[1] is not self:
            raise OSError(_errno.EBADF, "Bad file descriptor")
        return entry[0]

    def readinto(self, b):
        if self._timed_out:
            raise OSError("cannot read from timed out object")
        handle = self._handle("reader")
        try:
            data = self._lease.read(handle, len(b), self._sock._timeout)
        except TimeoutError:
            self._timed_out = True
            raise
        b[:len(data)] = data
        return len(data)

    def write(self, b):
        self._lease.write(self._handle("writer"), b)
        return len(b)

    def readable(self):
        self._checkClosed()
        return self._reading

    def writable(self):
        self._checkClosed()
        return self._writing

    def seekable(self):
        self._checkClosed()
        return False

    def fileno(self):
        self._checkClosed()
        return self._sock.fileno()

    @property
    def name(self):
        return -1 if self.closed else self.fileno()

    @property
    def mode(self):
        return self._mode

    def close(self):
        if self.closed:
            return
        super().close()
        self._release()

    def _release(self):
        lease = getattr(self, "_lease", None)
        if lease is not None:
            self._lease = None
            lease.give_back("writer", self)
            lease.give_back("reader", self)

    def _detach_from_socket(self):
        """The socket was detached (ssl wrap_socket): as on CPython, this file no longer reaches
        the connection, so its streams are given back now."""
        self._release()
        self._cut = True
