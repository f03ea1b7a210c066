//! Builds the fixture guests (tests/fixtures/*) and the example plugins (guest/plugins/*) as
//! real wasm32-wasip2 components and passes their paths to the tests as
//! `LEASHED_FIXTURE_<NAME>` (e.g. LEASHED_FIXTURE_SEED_BUG) and `LEASHED_PLUGIN_<NAME>`
//! (LEASHED_PLUGIN_ITEMS_RUST, LEASHED_PLUGIN_ITEMS_PYTHON, LEASHED_PLUGIN_ITEMS_PYMYSQL).
//!
//! The Python components (the example plugin and the leaky-python fixture) need componentize-py
//! (scripts/install-componentize-py installs it).
//!
//! The PyMySQL fixtures (tests/fixtures/pymysql-app, one component per PyMySQL version:
//! LEASHED_FIXTURE_PYMYSQL_1_1_1, LEASHED_FIXTURE_PYMYSQL_1_1_2) also need PyMySQL from PyPI,
//! which scripts/fetch-python-drivers caches under target/python-drivers.

use leashed_build_support::{
    ComponentBuild, PYMYSQL_VERSIONS, componentize_py, componentize_py_with, leashed_python_modules, pymysql_package,
};
use std::env;
use std::path::{Path, PathBuf};

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
    let items_http = plugins.join("items-common").join("items_http.py");
    let python = componentize_py_with(
        &plugins.join("items-python").join("app.py"),
        std::slice::from_ref(&items_http),
        &root.join("wit"),
        "plugin",
        &target_dir.join("items_python.wasm"),
    );
    export("PLUGIN", "items-python", &python);
    // PyMySQL 1.1.2 from PyPI on guest/python's leashed_socket, for the world socket-plugin.
    let mut beside = vec![items_http];
    beside.extend(leashed_python_modules(root));
    beside.push(pymysql_package(root, "1.1.2"));
    let pymysql = componentize_py_with(
        &plugins.join("items-pymysql").join("app.py"),
        &beside,
        &root.join("wit"),
        "socket-plugin",
        &target_dir.join("items_pymysql.wasm"),
    );
    export("PLUGIN", "items-pymysql", &pymysql);
}

/// `LEASHED_<KIND>_<NAME>` for the tests, e.g. LEASHED_PLUGIN_ITEMS_RUST.
fn export(kind: &str, name: &str, path: &Path) {
    let var = format!("LEASHED_{kind}_{}", name.to_uppercase().replace('-', "_"));
    println!("cargo:rustc-env={var}={}", path.display());
}

/// Builds tests/fixtures/pymysql-app once per PyMySQL version, against the world
/// `python-driver` (tests/fixtures/wit/python-driver.wit), with guest/python's `leashed_*.py`
/// modules and that version's `pymysql/` package (unmodified, from PyPI) next to the app.
fn build_pymysql_apps(fixtures: &Path, root: &Path) {
    let app = fixtures.join("pymysql-app").join("app.py");
    let modules = leashed_python_modules(root);
    for version in PYMYSQL_VERSIONS {
        let name = format!("pymysql-{}", version.replace('.', "-"));
        let output = root.join("target").join("fixtures").join(format!("{}.wasm", name.replace('-', "_")));
        let mut beside = modules.clone();
        beside.push(pymysql_package(root, version));
        componentize_py_with(&app, &beside, &fixtures.join("wit"), "python-driver", &output);
        export("FIXTURE", &name, &output);
    }
}
