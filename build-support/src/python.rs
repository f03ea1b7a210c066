//! Python components for build scripts: an app built with componentize-py, with what it needs
//! staged beside it (guest/python's `leashed_*.py` modules, a driver package from PyPI), and the
//! pinned PyMySQL releases that scripts/fetch-python-drivers caches under target/.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// The componentize-py release the Python components are built and tested with.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

/// The PyMySQL releases scripts/fetch-python-drivers pins (by sha256) and caches.
pub const PYMYSQL_VERSIONS: [&str; 2] = ["1.1.1", "1.1.2"];

/// Builds the Python module `app` (e.g. `.../items-python/app.py`) into a component for
/// `world` of the WIT at `wit`, written to `output`. See [`componentize_py_with`].
pub fn componentize_py(app: &Path, wit: &Path, world: &str, output: &Path) -> PathBuf {
    componentize_py_with(app, &[], wit, world, output)
}

/// Builds the Python module `app` into a component for `world` of the WIT at `wit`, written to
/// `output`, with componentize-py: the one named by `LEASHED_COMPONENTIZE_PY`, or the one on
/// PATH. `beside` are files or package directories copied next to the app under their own
/// names (bytecode caches left out). Returns `output`.
///
/// It runs only when `output` is older than any of its inputs, since componentize-py takes
/// 10–25 s; everything is staged next to `output` first, so the bytecode cache componentize-py
/// writes lands there and not in the source tree.
///
/// Panics with a message a person can act on when componentize-py is missing or fails.
pub fn componentize_py_with(app: &Path, beside: &[PathBuf], wit: &Path, world: &str, output: &Path) -> PathBuf {
    println!("cargo:rerun-if-env-changed=LEASHED_COMPONENTIZE_PY");
    let inputs: Vec<&Path> = [app, wit].into_iter().chain(beside.iter().map(PathBuf::as_path)).collect();
    for input in &inputs {
        println!("cargo:rerun-if-changed={}", input.display());
    }
    let newest = inputs.iter().map(|p| newest_mtime(p)).max().unwrap_or(SystemTime::UNIX_EPOCH);
    let built = fs::metadata(output).and_then(|m| m.modified()).ok();
    if built.is_some_and(|built| built >= newest) {
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
            "cargo:warning={version} found; the Python components are tested with componentize-py {COMPONENTIZE_PY_VERSION}"
        );
    }
    let module = app.file_stem().and_then(|stem| stem.to_str()).expect("the app is a .py file");
    let out_dir = output.parent().expect("the output is a file in a directory");
    let staging = out_dir.join(format!("{}-src", output.file_stem().and_then(|s| s.to_str()).unwrap_or(module)));
    let _ = fs::remove_dir_all(&staging);
    for path in std::iter::once(app).chain(beside.iter().map(PathBuf::as_path)) {
        let name = path.file_name().unwrap_or_else(|| panic!("{} has no file name", path.display()));
        copy_tree(path, &staging.join(name));
    }
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

/// guest/python's modules that a Python component on leashed:net bundles (`leashed_*.py`, not
/// the tests), under the repository `root`.
pub fn leashed_python_modules(root: &Path) -> Vec<PathBuf> {
    let dir = root.join("guest").join("python");
    println!("cargo:rerun-if-changed={}", dir.display()); // a module added or removed
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    let mut modules: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("leashed_") && name.ends_with(".py")
        })
        .collect();
    modules.sort();
    modules
}

/// The `pymysql/` package of PyMySQL `version` (one of [`PYMYSQL_VERSIONS`]), unmodified from
/// PyPI, under `root`/target/python-drivers; scripts/fetch-python-drivers fetches it first if
/// the cache lacks it. Panics saying why when it cannot.
pub fn pymysql_package(root: &Path, version: &str) -> PathBuf {
    let fetch = root.join("scripts").join("fetch-python-drivers");
    println!("cargo:rerun-if-changed={}", fetch.display());
    let package = root.join("target").join("python-drivers").join(format!("pymysql-{version}")).join("pymysql");
    if !package.join("connections.py").is_file() {
        // Its messages go to the build log; a build script's stdout is for cargo.
        let status = Command::new(&fetch).stdout(std::io::stderr()).status();
        if !matches!(status, Ok(s) if s.success()) || !package.join("connections.py").is_file() {
            panic!(
                "PyMySQL {version} is not in {} and {} could not fetch it from PyPI (see its output above)",
                package.display(),
                fetch.display()
            );
        }
    }
    package
}

/// Copies a file, or a directory with everything below it (bytecode caches left out).
fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        fs::create_dir_all(to).unwrap_or_else(|e| panic!("cannot create {}: {e}", to.display()));
        for entry in fs::read_dir(from).unwrap_or_else(|e| panic!("cannot read {}: {e}", from.display())) {
            let entry = entry.unwrap_or_else(|e| panic!("cannot read {}: {e}", from.display()));
            if entry.file_name() != "__pycache__" {
                copy_tree(&entry.path(), &to.join(entry.file_name()));
            }
        }
    } else {
        if let Some(dir) = to.parent() {
            fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        }
        fs::copy(from, to).unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", from.display(), to.display()));
    }
}

/// The newest modification time of `path` or of any file below it (following symlinks).
fn newest_mtime(path: &Path) -> SystemTime {
    let own = fs::metadata(path).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
    let children = fs::read_dir(path).into_iter().flatten().flatten();
    children.map(|entry| newest_mtime(&entry.path())).fold(own, SystemTime::max)
}
