//! Sites: where something happened to a handle, as a backtrace, innermost frame first.
//!
//! - Guest sites are the guest's wasm backtrace (names from the component's name section, Rust
//!   names demangled, hashes dropped), captured when a handle is lent or dropped, and when a
//!   stream is used after its socket was reclaimed: a few microseconds each, never on a plain
//!   read or write.
//! - Host sites are the host's own Rust backtrace, captured only for host bugs (a handle
//!   released twice), where the bug is in the host and not in the guest.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use wasmtime::{AsContext, WasmBacktrace};

/// The most frames a guest site keeps: a guest that recurses deeply before a call must not
/// make the audit walk or keep its whole stack (for every handle it is lent). The engine's
/// backtraces stop at this many frames (`runtime::base_config` sets
/// `wasm_backtrace_max_frames`; wasmtime's default is 20), so the innermost frames, where the
/// call was made, are the ones kept, and a last line says when outer ones were left out.
pub const MAX_SITE_FRAMES: usize = 64;

/// The line that ends a site cut at [`MAX_SITE_FRAMES`].
pub const OUTER_FRAMES_LEFT_OUT: &str = "… outer frames left out (a site keeps the innermost 64)";

/// The guest's frames, innermost first, at most [`MAX_SITE_FRAMES`] of them. Host trampolines
/// (frames without a module name and without a function name) are left out.
pub fn capture(store: impl AsContext) -> Vec<String> {
    let backtrace = WasmBacktrace::force_capture(store);
    let cut = backtrace.frames().len() >= MAX_SITE_FRAMES;
    let mut site: Vec<String> = backtrace
        .frames()
        .iter()
        .filter_map(|frame| match frame.func_name() {
            Some(name) => Some(demangled(name)),
            None if frame.module().name().is_none() => None,
            None => Some(format!("<wasm function {}>", frame.func_index())),
        })
        .collect();
    if cut {
        site.push(OUTER_FRAMES_LEFT_OUT.to_string());
    }
    site
}

/// Names demangled so far. A guest lends and drops its handles from the same few call paths,
/// so after the first request nearly every frame is found here instead of demangled again.
static DEMANGLED: LazyLock<Mutex<HashMap<String, String>>> = LazyLock::new(Default::default);

/// Past this many names the cache starts over (a bound, for hosts that load many components).
const DEMANGLED_CAP: usize = 16_384;

/// `name` demangled (Rust's legacy and v0 schemes), without the hash.
fn demangled(name: &str) -> String {
    let mut cache = DEMANGLED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(known) = cache.get(name) {
        return known.clone();
    }
    if cache.len() >= DEMANGLED_CAP {
        cache.clear();
    }
    let readable = format!("{:#}", rustc_demangle::demangle(name));
    cache.insert(name.to_string(), readable.clone());
    readable
}

/// Frames of the host's backtrace kept in a host site.
const HOST_FRAMES: usize = 16;

/// The host's frames, innermost first, starting with the caller of the registry's release (the
/// backtrace machinery and the registry's own frames are left out).
pub fn capture_host() -> Vec<String> {
    let text = std::backtrace::Backtrace::force_capture().to_string();
    let frames: Vec<String> = text
        .lines()
        .filter_map(|line| {
            // Frame lines read "  12: path::to::function"; location lines read "at file:line".
            let (index, name) = line.trim_start().split_once(": ")?;
            index.parse::<u32>().ok()?;
            Some(name.trim().to_string())
        })
        .collect();
    let first = frames.iter().position(|f| f.contains("Audit::mark_released")).map_or(0, |i| i + 1);
    frames.into_iter().skip(first).take(HOST_FRAMES).collect()
}

/// A site as a person reads it: runs of interpreter frames (CPython, pyo3, componentize-py's
/// runtime) folded into one line, e.g. `… 17 CPython interpreter frames …`. Reports and one-line
/// sites use this; the JSON keeps every frame.
pub fn condensed(site: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(site.len());
    let mut run = 0;
    for frame in site {
        if is_interpreter(frame) {
            run += 1;
            continue;
        }
        if run > 0 {
            out.push(interpreter_run(run));
            run = 0;
        }
        out.push(frame.clone());
    }
    if run > 0 {
        out.push(interpreter_run(run));
    }
    out
}

/// The frame to name a handle by in a one-line message: the innermost frame the guest attached
/// in its own language, else the innermost one that is neither binding glue (wit-bindgen, the
/// component adapter) nor interpreter machinery.
pub fn one_line(site: &[String]) -> Option<&str> {
    let frames = || site.iter().map(String::as_str);
    frames()
        .find(|f| is_own_frame(f))
        .or_else(|| frames().find(|f| !is_glue(f) && !is_interpreter(f)))
        .or(site.first().map(String::as_str))
}

/// A wasm site with the frames the guest attached in its own language (leashed:net/sites): they
/// stand where the interpreter's frames begin (the interpreter runs them), or last if the
/// backtrace shows no interpreter.
pub fn with_own_frames(mut wasm: Vec<String>, own: Vec<String>) -> Vec<String> {
    let at = wasm.iter().position(|f| is_interpreter(f)).unwrap_or(wasm.len());
    wasm.splice(at..at, own);
    wasm
}

/// Whether a frame is one a guest attached in its own language: `file:line function`.
fn is_own_frame(frame: &str) -> bool {
    let location = frame.split(' ').next().unwrap_or(frame);
    location
        .rsplit_once(':')
        .is_some_and(|(file, line)| !file.is_empty() && !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit()))
}

fn interpreter_run(frames: usize) -> String {
    format!("… {frames} CPython interpreter frame{} …", if frames == 1 { "" } else { "s" })
}

/// CPython's C API and evaluation loop, pyo3's trampolines, componentize-py's runtime.
fn is_interpreter(frame: &str) -> bool {
    const PREFIXES: [&str; 11] = [
        "_Py",
        "Py",
        "cfunction_",
        "method_vectorcall",
        "vectorcall_",
        "slot_tp_",
        "type_call",
        "object_vacall",
        "pyo3::",
        "componentize_py_runtime::",
        "<pyo3::",
    ];
    !frame.starts_with("Python") && PREFIXES.iter().any(|p| frame.starts_with(p))
}

/// Frames the bindings generate around every call across a component boundary.
fn is_glue(frame: &str) -> bool {
    frame.starts_with("wit_bindgen")
        || frame.starts_with("<wit_bindgen")
        || frame.starts_with("wasi_snapshot_preview1")
        || frame.starts_with("cabi_")
        || frame.contains("::_rt::")
        || frame.contains("::_export_")
        || frame.contains("wit-component:")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    /// Interpreter runs fold into one line each; other frames stay in order.
    #[test]
    fn interpreter_runs_fold_into_one_line() {
        let site = frames(&[
            "leashed_guest::link::Link::connect",
            "_PyEval_EvalFrameDefault",
            "PyObject_Vectorcall",
            "cfunction_call",
            "componentize_py_runtime::call_export",
            "main",
        ]);
        assert_eq!(
            condensed(&site),
            frames(&["leashed_guest::link::Link::connect", "… 4 CPython interpreter frames …", "main"])
        );
    }

    /// The one-line site skips binding glue and interpreter frames.
    #[test]
    fn one_line_sites_skip_glue() {
        let site = frames(&["wit_bindgen::rt::run_ctors_once", "PyObject_Call", "items::handle"]);
        assert_eq!(one_line(&site), Some("items::handle"));
        assert_eq!(one_line(&frames(&["cabi_realloc"])), Some("cabi_realloc"));
    }

    /// A guest's own frames stand where the interpreter's begin, and name the handle in one
    /// line; Rust paths and trampolines are not taken for them.
    #[test]
    fn own_frames_stand_where_the_interpreter_begins() {
        let wasm = frames(&["adapter [static]connection.connect", "_PyEval_EvalFrameDefault", "main"]);
        let own = frames(&["pymysql/connections.py:441 _force_close", "app.py:12 run"]);
        let site = with_own_frames(wasm, own);
        assert_eq!(
            site,
            frames(&[
                "adapter [static]connection.connect",
                "pymysql/connections.py:441 _force_close",
                "app.py:12 run",
                "_PyEval_EvalFrameDefault",
                "main"
            ])
        );
        assert_eq!(one_line(&site), Some("pymysql/connections.py:441 _force_close"));
        assert!(!is_own_frame("leashed_guest::link::Link::connect"));
        assert!(!is_own_frame("<wasm function 12>"));
        assert_eq!(with_own_frames(frames(&["a::b"]), frames(&["x.py:1 f"])), frames(&["a::b", "x.py:1 f"]));
    }
}
