//! Builds the items-rust example plugin (guest/plugins), which the `leashed serve` workload
//! serves, and passes its path as LEASHED_BENCH_PLUGIN.

use leashed_build_support::ComponentBuild;
use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).parent().unwrap().to_path_buf();
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
}
