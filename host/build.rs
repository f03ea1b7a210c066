//! Builds the leashed guest component (guest/, for wasm32-wasip2) so the host can embed it:
//! a fresh checkout needs no separate guest build. `LEASHED_GUEST_WASM=path` skips the build and
//! embeds that file instead.
//!
//! The nested cargo uses its own target dir (target/guest) so it never waits on the outer
//! build's lock, and shares the outer build's jobserver.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const GUEST_TARGET: &str = "wasm32-wasip2";

fn main() {
    println!("cargo:rerun-if-env-changed=LEASHED_GUEST_WASM");
    let wasm = match env::var_os("LEASHED_GUEST_WASM") {
        Some(path) => PathBuf::from(path),
        None => build_guest(),
    };
    println!("cargo:rerun-if-changed={}", wasm.display());
    println!("cargo:rustc-env=LEASHED_GUEST_WASM={}", wasm.display());
}

fn build_guest() -> PathBuf {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().expect("host/ sits in the workspace root");
    for watched in ["guest/src", "guest/Cargo.toml", "wit", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    ensure_wasm_target();

    let target_dir = root.join("target").join("guest");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--release", "--locked", "-p", "leashed-guest", "--target", GUEST_TARGET])
        .arg("--target-dir")
        .arg(&target_dir)
        // The outer build's flags are for the host target; they must not leak into the guest's.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        // No DWARF in the component: it would triple its size and its compile time. The name
        // section stays, so wasm backtraces still name the guest's functions.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo");
    let status = cmd.status().unwrap_or_else(|e| panic!("cannot run cargo to build the guest: {e}"));
    if !status.success() {
        panic!("building the guest component (cargo build -p leashed-guest --target {GUEST_TARGET}) failed");
    }
    let wasm = target_dir.join(GUEST_TARGET).join("release").join("leashed_guest.wasm");
    assert!(wasm.is_file(), "the guest build did not produce {}", wasm.display());
    wasm
}

/// `rustup target add` is idempotent, but costs a network round trip; only call it when the
/// target's standard library is missing.
fn ensure_wasm_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", GUEST_TARGET])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    if libdir.as_deref().is_some_and(Path::is_dir) {
        return;
    }
    println!("cargo:warning=the {GUEST_TARGET} target is missing; running `rustup target add {GUEST_TARGET}`");
    let added = Command::new("rustup").args(["target", "add", GUEST_TARGET]).status();
    if !matches!(added, Ok(s) if s.success()) {
        panic!(
            "the Rust target {GUEST_TARGET} is not installed and `rustup target add {GUEST_TARGET}` failed; install it and build again"
        );
    }
}
