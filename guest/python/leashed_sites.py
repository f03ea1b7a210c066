"""leashed_sites: tells a leashed host the Python frames behind a lend or a drop, so the audit's
sites name the code that took or gave back a handle (`pymysql/connections.py:441 _force_close`)
and not only the CPython interpreter's C frames, which are all the wasm backtrace shows.

It owns the `leashed:net/sites@0.2.0` side of leashed_socket: finding the import, asking
`wanted()` and formatting frames. A world without the import, or a host whose audit detail is
off, costs one host call (`wanted`) per lend or drop and formats nothing.
"""

import sys as _sys

# The host keeps this many frames (innermost first); more would be cut there anyway.
MAX_FRAMES = 64

# The modules whose frames are machinery, not the caller's code: they are left out.
_OWN_FILES = frozenset(("leashed_socket.py", "leashed_socketio.py", "leashed_socket_errors.py", "leashed_ssl.py",
                        "leashed_sites.py"))

# The bindings, looked up when this module is imported: a componentize-py component holds only
# the modules imported while it was built (its pre-initialisation), and the bindings of an
# interface the code never imported by then are not there at run time.
try:
    from wit_world.imports import sites as _found
except ImportError:
    try:
        from wit_world.imports import leashed_net_sites as _found
    except ImportError:
        _found = None

# The bindings module of leashed:net/sites, or False when the world lacks it.
_sites = _found if _found is not None and hasattr(_found, "attach") and hasattr(_found, "wanted") else False


def use(module):
    """Names the bindings of leashed:net/sites (False or None: none)."""
    global _sites
    _sites = module or False


def attach_caller_frames():
    """Attaches the caller's Python frames to the next lend or drop, if the host records sites.
    Called by leashed_socket just before the one host call that lends or drops a handle."""
    sites = _sites
    if sites and sites.wanted():
        sites.attach(caller_frames(_sys._getframe(1)))


def caller_frames(frame, limit=MAX_FRAMES):
    """`frame` and its callers, innermost first, as `path:line function`, without the frames of
    leashed's own modules. A path is shown relative to the sys.path entry it was imported from
    (`pymysql/connections.py`), as a traceback would name the module."""
    out = []
    while frame is not None and len(out) < limit:
        code = frame.f_code
        if code.co_filename.rpartition("/")[2] not in _OWN_FILES:
            out.append(f"{_short_path(code.co_filename)}:{frame.f_lineno} {code.co_name}")
        frame = frame.f_back
    return out


def _short_path(path):
    """`path` without the longest sys.path entry it starts with."""
    best = ""
    for entry in _sys.path:
        if entry and len(entry) > len(best) and path.startswith(entry.rstrip("/") + "/"):
            best = entry.rstrip("/") + "/"
    return path[len(best):] if best else path
