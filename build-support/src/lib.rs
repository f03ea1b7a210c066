//! Used by build scripts (host/build.rs, tests/build.rs) to build wasm32-wasip2 components with
//! a nested cargo, so a fresh checkout needs no separate wasm build step; and to build Python
//! apps into components with componentize-py (`componentize_py`).
//!
//! The nested cargo gets its own target dir, so it never waits on the outer build's lock, and
//! shares the outer build's jobserver. It must not be used outside build scripts.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

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

/// The componentize-py release the Python components are built and tested with.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

/// Builds the Python module `app` (e.g. `.../items-python/app.py`) into a component for
/// `world` of the WIT at `wit`, written to `output`, with componentize-py: the one named by
/// `LEASHED_COMPONENTIZE_PY`, or the one on PATH. Returns `output`.
///
/// It runs only when `output` is older than `app` or any file under `wit`, since
/// componentize-py takes about 20 s; the module is copied next to `output` first, so the
/// bytecode cache componentize-py writes lands there and not in the source tree.
///
/// Panics with a message a person can act on when componentize-py is missing or fails.
pub fn componentize_py(app: &Path, wit: &Path, world: &str, output: &Path) -> PathBuf {
    println!("cargo:rerun-if-changed={}", app.display());
    println!("cargo:rerun-if-changed={}", wit.display());
    println!("cargo:rerun-if-env-changed=LEASHED_COMPONENTIZE_PY");
    let inputs = newest_mtime(app).max(newest_mtime(wit));
    let built = fs::metadata(output).and_then(|m| m.modified()).ok();
    if built.is_some_and(|built| built >= inputs) {
        return output.to_path_buf();
    }
    let tool = env::var_os("LEASHED_COMPONENTIZE_PY").unwrap_or_else(|| "componentize-py".into());
    let version = Command::new(&tool).arg("--version").output();
    let version = match version {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        _ => panic!(
            "componentize-py ({}) is needed to build {} and could not be run; install it with: \
             pip install componentize-py=={COMPONENTIZE_PY_VERSION} (or run scripts/install-componentize-py), \
             or set LEASHED_COMPONENTIZE_PY to its path",
            Path::new(&tool).display(),
            app.display()
        ),
    };
    if !version.ends_with(COMPONENTIZE_PY_VERSION) {
        println!(
            "cargo:warning={version} found; the Python plugins are tested with componentize-py {COMPONENTIZE_PY_VERSION}"
        );
    }
    let module = app.file_stem().and_then(|stem| stem.to_str()).expect("the app is a .py file");
    let out_dir = output.parent().expect("the output is a file in a directory");
    let staging = out_dir.join(format!("{}-src", output.file_stem().and_then(|s| s.to_str()).unwrap_or(module)));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).unwrap_or_else(|e| panic!("cannot create {}: {e}", staging.display()));
    let file_name = app.file_name().expect("the app is a file");
    fs::copy(app, staging.join(file_name)).unwrap_or_else(|e| panic!("cannot copy {}: {e}", app.display()));
    let status = Command::new(&tool)
        .arg("-d")
        .arg(wit)
        .args(["-w", world, "componentize", module, "-p"])
        .arg(&staging)
        .arg("-o")
        .arg(output)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // A build script's stdout is for cargo; componentize-py's chatter goes to the log.
        .stdout(std::io::stderr())
        .status()
        .unwrap_or_else(|e| panic!("cannot run componentize-py: {e}"));
    if !status.success() {
        panic!("componentize-py failed to build {} (see its output above)", app.display());
    }
    assert!(output.is_file(), "componentize-py did not write {}", output.display());
    output.to_path_buf()
}

/// The newest modification time of `path` or of any file below it (following symlinks).
fn newest_mtime(path: &Path) -> SystemTime {
    let own = fs::metadata(path).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
    let children = fs::read_dir(path).into_iter().flatten().flatten();
    children.map(|entry| newest_mtime(&entry.path())).fold(own, SystemTime::max)
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
