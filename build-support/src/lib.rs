//! Used by build scripts (host/build.rs, tests/build.rs) to build wasm32-wasip2 components with
//! a nested cargo, so a fresh checkout needs no separate wasm build step; and to build Python
//! apps into components with componentize-py ([`python`]).
//!
//! The nested cargo gets its own target dir, so it never waits on the outer build's lock, and
//! shares the outer build's jobserver. It must not be used outside build scripts.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

mod python;
pub use python::{
    COMPONENTIZE_PY_VERSION, PYMYSQL_VERSIONS, componentize_py, componentize_py_with, leashed_python_modules,
    pymysql_package,
};

/// The target every leashed component is built for.
pub const WASM_TARGET: &str = "wasm32-wasip2";

/// What to build.
pub struct ComponentBuild<'a> {
    /// The Cargo.toml of the workspace (or package) that holds the packages.
    pub manifest: &'a Path,
    /// The packages to build; each must be a `cdylib`.
    pub packages: &'a [&'a str],
    /// Where the nested build puts its output.
    pub target_dir: &'a Path,
    /// Paths whose change must trigger a rebuild (sources, WIT, lock file).
    pub watch: &'a [&'a Path],
}

impl ComponentBuild<'_> {
    /// Builds the packages in release mode and returns each one's `.wasm`, in order.
    ///
    /// Panics with a message a person can act on when the build fails (build scripts report
    /// failure by panicking).
    pub fn build(&self) -> Vec<PathBuf> {
        for path in self.watch {
            println!("cargo:rerun-if-changed={}", path.display());
        }
        ensure_wasm_target();
        let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--release", "--locked", "--target", WASM_TARGET])
            .arg("--manifest-path")
            .arg(self.manifest)
            .arg("--target-dir")
            .arg(self.target_dir)
            // The outer build's flags are for the host target; they must not leak into the guest's.
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_BUILD_RUSTFLAGS")
            .env_remove("CARGO_TARGET_DIR")
            // No DWARF in components: it would triple their size and compile time. The name
            // section stays, so wasm backtraces still name the guest's functions.
            .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
            .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo");
        for package in self.packages {
            cmd.args(["-p", package]);
        }
        let status = cmd.status().unwrap_or_else(|e| panic!("cannot run cargo to build components: {e}"));
        if !status.success() {
            panic!("building the components {:?} for {WASM_TARGET} failed (see the cargo output above)", self.packages);
        }
        self.packages
            .iter()
            .map(|package| {
                let wasm = self
                    .target_dir
                    .join(WASM_TARGET)
                    .join("release")
                    .join(format!("{}.wasm", package.replace('-', "_")));
                assert!(wasm.is_file(), "the build did not produce {}", wasm.display());
                wasm
            })
            .collect()
    }
}

/// Panics, saying what to install, unless a C compiler for wasm32 is there: ring (the TLS crypto
/// of the wasi-sockets adapter) has C and assembly parts, and only clang compiles them for wasm.
/// `CC_wasm32_wasip2` names another compiler; otherwise `clang` must be on PATH.
pub fn ensure_wasm_c_compiler() {
    println!("cargo:rerun-if-env-changed=CC_wasm32_wasip2");
    let cc = env::var("CC_wasm32_wasip2").unwrap_or_else(|_| "clang".into());
    let works = Command::new(&cc).arg("--version").output().is_ok_and(|out| out.status.success());
    if !works {
        panic!(
            "building the wasi-sockets adapter (guest/adapters/wasi-sockets) needs clang to compile ring for \
             {WASM_TARGET}, and `{cc} --version` failed; install it (Debian: apt-get install clang, or run \
             scripts/install-build-tools) or set CC_wasm32_wasip2 to a clang"
        );
    }
}

/// `rustup target add` is idempotent but costs a network round trip; only call it when the
/// target's standard library is missing.
fn ensure_wasm_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", WASM_TARGET])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    if libdir.as_deref().is_some_and(Path::is_dir) {
        return;
    }
    println!("cargo:warning=the {WASM_TARGET} target is missing; running `rustup target add {WASM_TARGET}`");
    let added = Command::new("rustup").args(["target", "add", WASM_TARGET]).status();
    if !matches!(added, Ok(s) if s.success()) {
        panic!(
            "the Rust target {WASM_TARGET} is not installed and `rustup target add {WASM_TARGET}` failed; install it and build again"
        );
    }
}
