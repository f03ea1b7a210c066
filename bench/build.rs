//! Builds what the benchmark runs besides the embedded guest: the items-rust example plugin
//! (guest/plugins), which the `leashed serve` workload serves, passed as LEASHED_BENCH_PLUGIN;
//! and PyMySQL 1.1.2 in a component (bench/pymysql-app, world `pymysql-bench` of bench/wit),
//! passed as LEASHED_BENCH_PYMYSQL_COMPONENT. The second needs componentize-py
//! (scripts/install-componentize-py) and PyMySQL from PyPI (scripts/fetch-python-drivers).

use leashed_build_support::{ComponentBuild, componentize_py_with, leashed_python_modules, pymysql_package};
use std::path::{Path, PathBuf};

/// The PyMySQL release the component runs, unmodified from PyPI.
const PYMYSQL_VERSION: &str = "1.1.2";

fn main() {
    let bench = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = bench.parent().unwrap().to_path_buf();
    let plugins = root.join("guest/plugins");
    let watch = [plugins.join("items-rust"), plugins.join("Cargo.lock"), root.join("wit")];
    let watch: Vec<&Path> = watch.iter().map(PathBuf::as_path).collect();
    let wasm = ComponentBuild {
        manifest: &plugins.join("Cargo.toml"),
        packages: &["items-rust"],
        target_dir: &root.join("target").join("plugins"),
        watch: &watch,
    }
    .build();
    println!("cargo:rustc-env=LEASHED_BENCH_PLUGIN={}", wasm[0].display());

    let mut beside = leashed_python_modules(&root);
    beside.push(pymysql_package(&root, PYMYSQL_VERSION));
    let output = root.join("target").join("bench").join("pymysql_bench.wasm");
    let app = bench.join("pymysql-app").join("app.py");
    let component = componentize_py_with(&app, &beside, &bench.join("wit"), "pymysql-bench", &output);
    println!("cargo:rustc-env=LEASHED_BENCH_PYMYSQL_COMPONENT={}", component.display());
}
