//! Builds the components the host embeds, so a fresh checkout needs no separate wasm build:
//! - the leashed MySQL guest (guest/); `LEASHED_GUEST_WASM=path` skips its build and embeds that
//!   file;
//! - the wasi-sockets adapter (guest/adapters/wasi-sockets), for `leashed compose --for
//!   wasi-sockets`; it needs clang (ring's C parts).

use leashed_build_support::{ComponentBuild, ensure_wasm_c_compiler};
use std::env;
use std::path::{Path, PathBuf};

fn main() {
    let host_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = host_dir.parent().expect("host/ sits in the workspace root");
    let guest = guest(root);
    println!("cargo:rerun-if-changed={}", guest.display());
    println!("cargo:rustc-env=LEASHED_GUEST_WASM={}", guest.display());
    let adapter = wasi_sockets_adapter(root);
    println!("cargo:rustc-env=LEASHED_WASI_SOCKETS_ADAPTER_WASM={}", adapter.display());
}

fn guest(root: &Path) -> PathBuf {
    println!("cargo:rerun-if-env-changed=LEASHED_GUEST_WASM");
    if let Some(path) = env::var_os("LEASHED_GUEST_WASM") {
        return PathBuf::from(path);
    }
    let watch = [root.join("guest/src"), root.join("guest/Cargo.toml"), root.join("wit"), root.join("Cargo.lock")];
    let watch: Vec<&Path> = watch.iter().map(PathBuf::as_path).collect();
    ComponentBuild {
        manifest: &root.join("Cargo.toml"),
        packages: &["leashed-guest"],
        target_dir: &root.join("target").join("guest"),
        watch: &watch,
    }
    .build()
    .remove(0)
}

fn wasi_sockets_adapter(root: &Path) -> PathBuf {
    let adapter = root.join("guest/adapters/wasi-sockets");
    ensure_wasm_c_compiler();
    // The adapter compiles the host's TLS configuration in (a #[path] module).
    let watch = [
        adapter.join("src"),
        adapter.join("wit"),
        adapter.join("Cargo.toml"),
        adapter.join("Cargo.lock"),
        root.join("wit/deps"),
        root.join("host/src/net/tls_config.rs"),
    ];
    let watch: Vec<&Path> = watch.iter().map(PathBuf::as_path).collect();
    ComponentBuild {
        manifest: &adapter.join("Cargo.toml"),
        packages: &["leashed-wasi-sockets"],
        target_dir: &root.join("target").join("adapters"),
        watch: &watch,
    }
    .build()
    .remove(0)
}
