//! Creation sites: the guest's wasm backtrace at the moment a handle is lent, as function names
//! from the component's name section (Rust names demangled, hashes dropped).
//!
//! Capturing walks the guest's stack and looks names up: a few microseconds per lend, never on
//! reads or writes.

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
