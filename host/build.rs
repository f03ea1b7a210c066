//! Builds the leashed guest component (guest/) so the host can embed it: a fresh checkout needs
//! no separate guest build. `LEASHED_GUEST_WASM=path` skips the build and embeds that file.

use leashed_build_support::ComponentBuild;
use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LEASHED_GUEST_WASM");
    let wasm = match env::var_os("LEASHED_GUEST_WASM") {
        Some(path) => PathBuf::from(path),
        None => {
            let host_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
            let root = host_dir.parent().expect("host/ sits in the workspace root");
            let watch =
                [root.join("guest/src"), root.join("guest/Cargo.toml"), root.join("wit"), root.join("Cargo.lock")];
            let watch: Vec<&std::path::Path> = watch.iter().map(|p| p.as_path()).collect();
            ComponentBuild {
                manifest: &root.join("Cargo.toml"),
                packages: &["leashed-guest"],
                target_dir: &root.join("target").join("guest"),
                watch: &watch,
            }
            .build()
            .remove(0)
        }
    };
    println!("cargo:rerun-if-changed={}", wasm.display());
    println!("cargo:rustc-env=LEASHED_GUEST_WASM={}", wasm.display());
}
