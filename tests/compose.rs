//! `leashed compose`: the example plugin plugged with the embedded MySQL guest imports only WASI
//! and leashed:net, runs under `leashed serve` as it is, and bad plugins get one clear line.

use leashed::compose::Interfaces;
use leashed_tests::served::{Served, leashed_bin};
use leashed_tests::{Account, url};
use std::process::Command;

fn compose(plugin: &str, output: &std::path::Path) -> std::process::Output {
    Command::new(leashed_bin()).args(["compose", plugin, "-o"]).arg(output).output().unwrap()
}

/// The composed Rust plugin imports nothing but `wasi:*` and `leashed:net/*`, and exports the
/// incoming handler.
#[test]
fn composed_plugin_imports_only_wasi_and_leashed_net() {
    let output = std::env::temp_dir().join(format!("leashed-composed-{}.wasm", std::process::id()));
    let out = compose(env!("LEASHED_PLUGIN_ITEMS_RUST"), &output);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&output).unwrap();
    let _ = std::fs::remove_file(&output);
    let interfaces = Interfaces::of(&bytes, "the composed plugin").unwrap();
    let foreign: Vec<_> =
        interfaces.imports.iter().filter(|i| !i.starts_with("wasi:") && !i.starts_with("leashed:net/")).collect();
    assert!(foreign.is_empty(), "imports other than WASI and leashed:net: {foreign:?}");
    assert!(interfaces.imports.iter().any(|i| i.starts_with("leashed:net/tcp@0.1")), "{:?}", interfaces.imports);
    assert!(interfaces.exports_incoming_handler(), "{:?}", interfaces.exports);
}

/// The composed file is served as it is (no second composition) and answers like the plugin.
#[test]
fn composed_plugin_serves_without_further_steps() {
    let output = std::env::temp_dir().join(format!("leashed-composed-serve-{}.wasm", std::process::id()));
    assert_eq!(compose(env!("LEASHED_PLUGIN_ITEMS_RUST"), &output).status.code(), Some(0));
    let url = url(Account::Native);
    let database = format!("DATABASE_URL={}", std::env::var("LEASHED_TEST_NATIVE_URL").unwrap());
    let allow = format!("{}:{}", url.host, url.port);
    let mut served = Served::start(output.to_str().unwrap(), &["--allow", &allow, "--env", &database]);
    let _ = std::fs::remove_file(&output);
    assert!(served.log().contains("composed_with_mysql_guest=false"), "{}", served.log());
    assert_eq!(served.get("/nowhere").status, 404);
    let ping = served.get("/items/abc");
    assert_eq!(ping.status, 400, "{ping:?}");
}

/// A component that is no plugin (no incoming handler) is refused with exit 2 and one line.
#[test]
fn a_component_without_an_http_handler_is_refused() {
    let output = std::env::temp_dir().join("leashed-never-written.wasm");
    let out = compose(env!("LEASHED_FIXTURE_SEED_BUG"), &output);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("exports no `wasi:http/incoming-handler@0.2.x`"), "{stderr}");
    assert!(!output.exists());
}
