//! Builds the fixture guests (tests/fixtures/*) and the example plugins (guest/plugins/*) as
//! real wasm32-wasip2 components and passes their paths to the tests as
//! `LEASHED_FIXTURE_<NAME>` (e.g. LEASHED_FIXTURE_SEED_BUG) and `LEASHED_PLUGIN_<NAME>`
//! (LEASHED_PLUGIN_ITEMS_RUST, LEASHED_PLUGIN_ITEMS_PYTHON).
//!
//! The Python components (the example plugin and the leaky-python fixture) need componentize-py
//! (scripts/install-componentize-py installs it).
//!
//! The PyMySQL fixtures (tests/fixtures/pymysql-app, one component per PyMySQL version:
//! LEASHED_FIXTURE_PYMYSQL_1_1_1, LEASHED_FIXTURE_PYMYSQL_1_1_2) also need PyMySQL from PyPI,
//! which scripts/fetch-python-drivers caches under target/python-drivers.

use leashed_build_support::{COMPONENTIZE_PY_VERSION, ComponentBuild, componentize_py};
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

const FIXTURES: [&str; 10] = [
    "seed-bug",
    "forget-all",
    "hold-writer",
    "trap-mid-read",
    "connect-loop",
    "well-behaved",
    "leaky-plugin",
    "stock-command",
    "hostile-plugin",
    "reuse-thief",
];

fn main() {
    let tests_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = tests_dir.parent().expect("tests/ sits in the workspace root");
    build_fixtures(&tests_dir.join("fixtures"), root);
    build_plugins(&root.join("guest").join("plugins"), root);
    let leaky_python = componentize_py(
        &tests_dir.join("fixtures").join("leaky-python").join("app.py"),
        &root.join("wit"),
        "plugin",
        &root.join("target").join("fixtures").join("leaky_python.wasm"),
    );
    export("FIXTURE", "leaky-python", &leaky_python);
    build_pymysql_apps(&tests_dir.join("fixtures"), root);
}

fn build_fixtures(fixtures: &Path, root: &Path) {
    let packages: Vec<String> = FIXTURES.iter().map(|f| format!("fixture-{f}")).collect();
    let packages: Vec<&str> = packages.iter().map(String::as_str).collect();
    let mut watch: Vec<PathBuf> = FIXTURES.iter().map(|f| fixtures.join(f)).collect();
    watch.extend([fixtures.join("wit"), fixtures.join("Cargo.lock"), root.join("wit")]);
    // leaky-plugin and stock-command read DATABASE_URL with items-rust's parser (a #[path] module).
    watch.push(root.join("guest/plugins/items-rust/src/config.rs"));
    let watch: Vec<&Path> = watch.iter().map(PathBuf::as_path).collect();
    let wasm = ComponentBuild {
        manifest: &fixtures.join("Cargo.toml"),
        packages: &packages,
        target_dir: &root.join("target").join("fixtures"),
        watch: &watch,
    }
    .build();
    for (name, path) in FIXTURES.iter().zip(wasm) {
        export("FIXTURE", name, &path);
    }
}

fn build_plugins(plugins: &Path, root: &Path) {
    let target_dir = root.join("target").join("plugins");
    let watch = [plugins.join("items-rust"), plugins.join("Cargo.toml"), plugins.join("Cargo.lock"), root.join("wit")];
    let watch: Vec<&Path> = watch.iter().map(PathBuf::as_path).collect();
    let wasm = ComponentBuild {
        manifest: &plugins.join("Cargo.toml"),
        packages: &["items-rust"],
        target_dir: &target_dir,
        watch: &watch,
    }
    .build();
    export("PLUGIN", "items-rust", &wasm[0]);
    let python = componentize_py(
        &plugins.join("items-python").join("app.py"),
        &root.join("wit"),
        "plugin",
        &target_dir.join("items_python.wasm"),
    );
    export("PLUGIN", "items-python", &python);
}

/// `LEASHED_<KIND>_<NAME>` for the tests, e.g. LEASHED_PLUGIN_ITEMS_RUST.
fn export(kind: &str, name: &str, path: &Path) {
    let var = format!("LEASHED_{kind}_{}", name.to_uppercase().replace('-', "_"));
    println!("cargo:rustc-env={var}={}", path.display());
}

/// The PyMySQL releases tests/python_drivers.rs runs (scripts/fetch-python-drivers pins them).
const PYMYSQL_VERSIONS: [&str; 2] = ["1.1.1", "1.1.2"];

/// Builds tests/fixtures/pymysql-app once per PyMySQL version, against the world
/// `python-driver` (tests/fixtures/wit/python-driver.wit), with guest/python's `leashed_*.py`
/// modules and that version's `pymysql/` package (unmodified, from PyPI) next to the
/// app in the componentize-py staging dir. Fetches PyMySQL first if the cache lacks it; skips a build that
/// is newer than all its inputs (componentize-py takes about 10 s).
fn build_pymysql_apps(fixtures: &Path, root: &Path) {
    let cache = root.join("target").join("python-drivers");
    let package = |version: &str| cache.join(format!("pymysql-{version}")).join("pymysql");
    println!("cargo:rerun-if-changed={}", root.join("scripts").join("fetch-python-drivers").display());
    if PYMYSQL_VERSIONS.iter().any(|v| !package(v).join("connections.py").is_file()) {
        let fetch = root.join("scripts").join("fetch-python-drivers");
        // Its messages go to the build log; a build script's stdout is for cargo.
        let status = Command::new(&fetch).stdout(std::io::stderr()).status();
        if !matches!(status, Ok(s) if s.success()) {
            panic!(
                "PyMySQL {PYMYSQL_VERSIONS:?} are not in {} and {} could not fetch them from PyPI (see its output above)",
                cache.display(),
                fetch.display()
            );
        }
    }
    let app = fixtures.join("pymysql-app").join("app.py");
    let python_dir = root.join("guest").join("python");
    println!("cargo:rerun-if-changed={}", python_dir.display()); // a module added or removed
    let modules = leashed_python_modules(&python_dir);
    let wit = fixtures.join("wit");
    for version in PYMYSQL_VERSIONS {
        let name = format!("pymysql-{}", version.replace('.', "-"));
        let output = root.join("target").join("fixtures").join(format!("{}.wasm", name.replace('-', "_")));
        let mut inputs = vec![app.clone(), package(version), wit.clone(), root.join("wit")];
        inputs.extend(modules.iter().cloned());
        for input in &inputs {
            println!("cargo:rerun-if-changed={}", input.display());
        }
        let newest = inputs.iter().map(|p| newest_mtime(p)).max().unwrap_or(SystemTime::UNIX_EPOCH);
        let built = fs::metadata(&output).and_then(|m| m.modified()).ok();
        if !built.is_some_and(|built| built >= newest) {
            let staging = output.with_file_name(format!("{}-src", name.replace('-', "_")));
            let _ = fs::remove_dir_all(&staging);
            copy_tree(&app, &staging.join("app.py"));
            for module in &modules {
                copy_tree(module, &staging.join(module.file_name().unwrap()));
            }
            copy_tree(&package(version), &staging.join("pymysql"));
            componentize(&staging, &wit, "python-driver", &output);
        }
        export("FIXTURE", &name, &output);
    }
}

/// The modules of guest/python a Python component bundles (`leashed_*.py`; not the tests).
fn leashed_python_modules(dir: &Path) -> Vec<PathBuf> {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
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

/// componentize-py (LEASHED_COMPONENTIZE_PY, or the one on PATH) builds the module `app` in
/// `staging`, and everything beside it, into `output`.
fn componentize(staging: &Path, wit: &Path, world: &str, output: &Path) {
    println!("cargo:rerun-if-env-changed=LEASHED_COMPONENTIZE_PY");
    let tool = env::var_os("LEASHED_COMPONENTIZE_PY").unwrap_or_else(|| "componentize-py".into());
    let status = Command::new(&tool)
        .arg("-d")
        .arg(wit)
        .args(["-w", world, "componentize", "app", "-p"])
        .arg(staging)
        .arg("-o")
        .arg(output)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdout(std::io::stderr())
        .status();
    match status {
        Ok(status) if status.success() => {}
        Ok(_) => panic!("componentize-py failed to build {} (see its output above)", output.display()),
        Err(e) => panic!(
            "componentize-py ({}) is needed to build {} and could not be run ({e}); install it with \
             scripts/install-componentize-py (componentize-py {COMPONENTIZE_PY_VERSION}), or set LEASHED_COMPONENTIZE_PY",
            Path::new(&tool).display(),
            output.display()
        ),
    }
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

/// The newest modification time of `path` or of anything below it (following symlinks).
fn newest_mtime(path: &Path) -> SystemTime {
    let own = fs::metadata(path).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
    let children = fs::read_dir(path).into_iter().flatten().flatten();
    children.map(|entry| newest_mtime(&entry.path())).fold(own, SystemTime::max)
}
