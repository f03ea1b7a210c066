//! Where the guest component comes from: the one built from guest/ and embedded at build time,
//! or a file the user names. Also the embedded wasi-sockets adapter.

use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::bail;
use wasmtime::component::Component;
use wasmtime::error::Context;

/// The leashed guest, built from guest/ by build.rs.
pub static EMBEDDED_GUEST: &[u8] = include_bytes!(env!("LEASHED_GUEST_WASM"));

/// The wasi-sockets adapter (leashed:net over wasi:sockets), built from
/// guest/adapters/wasi-sockets by build.rs, for `leashed compose --for wasi-sockets`.
pub static EMBEDDED_WASI_SOCKETS_ADAPTER: &[u8] = include_bytes!(env!("LEASHED_WASI_SOCKETS_ADAPTER_WASM"));

/// A component to load.
#[derive(Debug, Clone)]
pub enum ComponentSource {
    /// The guest embedded in this binary.
    Embedded,
    /// A `.wasm` component file.
    File(PathBuf),
}

impl ComponentSource {
    /// Compiles the component for `engine`, with an error that names the file and what is wrong
    /// with it.
    pub fn compile(&self, engine: &Engine) -> wasmtime::Result<Component> {
        match self {
            ComponentSource::Embedded => {
                Component::new(engine, EMBEDDED_GUEST).context("compiling the embedded leashed guest")
            }
            ComponentSource::File(path) => compile_file(engine, path),
        }
    }

    /// A short name for messages.
    pub fn describe(&self) -> String {
        match self {
            ComponentSource::Embedded => "the embedded leashed guest".into(),
            ComponentSource::File(path) => format!("component '{}'", path.display()),
        }
    }
}

fn compile_file(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("component file '{}' does not exist", path.display())
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read component file '{}'", path.display())),
    };
    if !bytes.starts_with(b"\0asm") {
        bail!("'{}' is not a WebAssembly file", path.display());
    }
    // Byte 4..8 is the version/layer field: core modules have layer 0, components layer 1.
    if bytes.get(6..8) != Some(&[0x01, 0x00][..]) {
        bail!(
            "'{}' is a core WebAssembly module, not a component (build it for wasm32-wasip2, or wrap it with `wasm-tools component new`)",
            path.display()
        );
    }
    Component::new(engine, &bytes).with_context(|| format!("'{}' is not a valid component", path.display()))
}
