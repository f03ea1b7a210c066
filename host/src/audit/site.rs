//! Sites: where something happened to a handle, as a backtrace, innermost frame first.
//!
//! - Guest sites are the guest's wasm backtrace (names from the component's name section, Rust
//!   names demangled, hashes dropped), captured when a handle is lent or dropped, and when a
//!   stream is used after its socket was reclaimed: a few microseconds each, never on a plain
//!   read or write.
//! - Host sites are the host's own Rust backtrace, captured only for host bugs (a handle
//!   released twice), where the bug is in the host and not in the guest.

use wasmtime::{AsContext, WasmBacktrace};

/// The guest's frames, innermost first. Host trampolines (frames without a module name and
/// without a function name) are left out.
pub fn capture(store: impl AsContext) -> Vec<String> {
    let backtrace = WasmBacktrace::force_capture(store);
    backtrace
        .frames()
        .iter()
        .filter_map(|frame| match frame.func_name() {
            Some(name) => Some(format!("{:#}", rustc_demangle::demangle(name))),
            None if frame.module().name().is_none() => None,
            None => Some(format!("<wasm function {}>", frame.func_index())),
        })
        .collect()
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
