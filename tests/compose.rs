//! `leashed compose`: the example plugin plugged with the embedded MySQL guest imports only WASI
//! and leashed:net (its socket and session-reuse interfaces), `leashed serve` refuses such a
//! component (it imports session reuse, which serve lends only to a guest it composes itself),
//! and bad plugins get one clear line.

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
    assert!(interfaces.imports.iter().any(|i| i.starts_with("leashed:net/tcp@0.2")), "{:?}", interfaces.imports);
    // The guest inside parks and resumes sessions.
    assert!(interfaces.imports.iter().any(|i| i.starts_with("leashed:net/reuse@0.2")), "{:?}", interfaces.imports);
    assert!(interfaces.exports_incoming_handler(), "{:?}", interfaces.exports);
}

/// A composed file is refused by `leashed serve` with exit 2 and one line: it carries a MySQL
/// guest that imports session reuse, and serve lends reuse only to the guest it plugs in itself
/// (so no component it did not compose can park or resume sockets). The plugin as built is
/// served.
#[test]
fn a_composed_plugin_is_refused_by_serve_and_the_plugin_as_built_is_served() {
    let output = std::env::temp_dir().join(format!("leashed-composed-serve-{}.wasm", std::process::id()));
    assert_eq!(compose(env!("LEASHED_PLUGIN_ITEMS_RUST"), &output).status.code(), Some(0));
    let url = url(Account::Native);
    let database = format!("DATABASE_URL={}", std::env::var("LEASHED_TEST_NATIVE_URL").unwrap());
    let allow = format!("{}:{}", url.host, url.port);
    let refused = Command::new(leashed_bin())
        .args(["serve", output.to_str().unwrap(), "--listen", "127.0.0.1:0", "--allow", &allow, "--env", &database])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&output);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("imports `leashed:net/reuse@0.2.0` (session reuse)"), "{stderr}");

    let mut served = Served::start(env!("LEASHED_PLUGIN_ITEMS_RUST"), &["--allow", &allow, "--env", &database]);
    assert!(served.log().contains("composed_with_mysql_guest=true"), "{}", served.log());
    assert_eq!(served.get("/nowhere").status, 404);
    assert_eq!(served.get("/items/abc").status, 400);
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
