//! Builds the fixture guests (tests/fixtures/*) as real wasm32-wasip2 components and passes
//! their paths to the tests as `LEASHED_FIXTURE_<NAME>` (e.g. LEASHED_FIXTURE_SEED_BUG).

use leashed_build_support::ComponentBuild;
use std::env;
use std::path::{Path, PathBuf};

const FIXTURES: [&str; 6] = ["seed-bug", "forget-all", "hold-writer", "trap-mid-read", "connect-loop", "well-behaved"];

fn main() {
    let tests_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let fixtures = tests_dir.join("fixtures");
    let root = tests_dir.parent().expect("tests/ sits in the workspace root");
    let packages: Vec<String> = FIXTURES.iter().map(|f| format!("fixture-{f}")).collect();
    let packages: Vec<&str> = packages.iter().map(String::as_str).collect();
    let mut watch: Vec<PathBuf> = FIXTURES.iter().map(|f| fixtures.join(f)).collect();
    watch.extend([fixtures.join("wit"), fixtures.join("Cargo.lock"), root.join("wit")]);
    let watch: Vec<&Path> = watch.iter().map(PathBuf::as_path).collect();
    let wasm = ComponentBuild {
        manifest: &fixtures.join("Cargo.toml"),
        packages: &packages,
        target_dir: &root.join("target").join("fixtures"),
        watch: &watch,
    }
    .build();
    for (name, path) in FIXTURES.iter().zip(wasm) {
        let var = format!("LEASHED_FIXTURE_{}", name.to_uppercase().replace('-', "_"));
        println!("cargo:rustc-env={var}={}", path.display());
    }
}
