//! Stock runtimes: components composed by `leashed compose --for wasi-sockets` (the example
//! plugins, the leaky fixture plugin, the MySQL guest itself) run on the official wasmtime CLI
//! (scripts/install-stock-wasmtime), not on leashed's host, against the private MariaDB.
//!
//! - The output imports only `wasi:*`.
//! - `wasmtime serve` gives the same answers as `leashed serve`, over TCP and over TLS with
//!   verify-identity, and holds no socket to MariaDB after a request.
//! - The adapter keeps the contract's strict drop rule, and maps socket failures (refused,
//!   unresolvable, timed out, reset, denied) onto leashed:net's error codes.
//! - `wasmtime run` runs a command composed with the stock MySQL component.

use leashed::compose::{Interfaces, plug};
use leashed_tests::composed::{
    COMPARED_PATHS, assert_no_socket_to_mariadb, assert_same_reply, compose_for_wasi_sockets, db_port,
    leashed_serve_with, new_id,
};
use leashed_tests::echo_peer;
use leashed_tests::items::{ITEMS, items_table};
use leashed_tests::served::{Reply, Served, leashed_bin};
use leashed_tests::stock::{SERVE_WASI, StockServe, closed_port, listener, resetting, silent, wasmtime_run};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn imports_of(path: &Path) -> Interfaces {
    Interfaces::of(&std::fs::read(path).unwrap(), &path.display().to_string()).unwrap()
}

/// Acceptance 1: plugins, and the guest alone, composed for wasi:sockets import only WASI.
#[test]
fn composed_for_wasi_sockets_the_imports_are_all_wasi() {
    for plugin in [env!("LEASHED_PLUGIN_ITEMS_RUST"), env!("LEASHED_PLUGIN_ITEMS_PYTHON")] {
        let composed = compose_for_wasi_sockets(Some(plugin), "imports");
        let interfaces = imports_of(&composed);
        let _ = std::fs::remove_file(&composed);
        let foreign: Vec<_> = interfaces.imports.iter().filter(|name| !name.starts_with("wasi:")).collect();
        assert!(foreign.is_empty(), "{plugin}: imports other than wasi:* {foreign:?}");
        assert!(interfaces.imports.iter().any(|name| name.starts_with("wasi:sockets/tcp@0.2")), "{interfaces:?}");
        assert!(interfaces.exports_incoming_handler(), "{interfaces:?}");
    }
    // A plugin already composed for leashed (it imports leashed:net) takes the adapter alone.
    let for_leashed = Path::new(env!("CARGO_TARGET_TMPDIR")).join("leashed-for-leashed.wasm");
    let out = Command::new(leashed_bin())
        .args(["compose", env!("LEASHED_PLUGIN_ITEMS_RUST"), "-o"])
        .arg(&for_leashed)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(imports_of(&for_leashed).imports.iter().any(|name| name.starts_with("leashed:net/")));
    let twice = compose_for_wasi_sockets(Some(for_leashed.to_str().unwrap()), "twice");
    let interfaces = imports_of(&twice);
    assert!(interfaces.imports.iter().all(|name| name.starts_with("wasi:")), "{interfaces:?}");
    assert!(interfaces.exports_incoming_handler(), "{interfaces:?}");

    let guest = compose_for_wasi_sockets(None, "guest");
    let interfaces = imports_of(&guest);
    let _ = std::fs::remove_file(&guest);
    assert!(interfaces.imports.iter().all(|name| name.starts_with("wasi:")), "{interfaces:?}");
    // The client, and the contract its error codes come from, so one plug satisfies a consumer.
    for export in ["leashed:mysql/connection@0.2.0", "leashed:net/tcp@0.2.0"] {
        assert!(interfaces.exports.iter().any(|name| name == export), "{export}: {interfaces:?}");
    }
}

/// `--for leashed` (the default) still needs a plugin; the refusal is one line with exit 2.
#[test]
fn composing_nothing_for_leashed_is_a_usage_error() {
    let out = Command::new(leashed_bin()).args(["compose", "-o", "/tmp/never.wasm"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("name the plugin to compose"), "{stderr}");
}

/// Acceptance 2: stock `wasmtime serve` runs the composed Rust and Python plugins with the same
/// answers as `leashed serve`, over plain TCP and over TLS (verify-identity against the test
/// CA, verify-ca by address, and a refused certificate with the same words); after every request the wasmtime process
/// holds no socket to MariaDB. One test, so the POSTs at the end cannot race other comparisons.
#[test]
fn stock_wasmtime_serve_answers_like_leashed_serve_over_tcp_and_tls() {
    items_table();
    let plain = std::env::var("LEASHED_TEST_NATIVE_URL").unwrap();
    let by_name = plain.replacen("@127.0.0.1:", "@localhost:", 1);
    let ca = std::fs::read_to_string(std::env::var("LEASHED_TEST_TLS_CA").unwrap()).unwrap();
    let other_ca = std::fs::read_to_string(std::env::var("LEASHED_TEST_TLS_OTHER_CA").unwrap()).unwrap();
    let rust = compose_for_wasi_sockets(Some(env!("LEASHED_PLUGIN_ITEMS_RUST")), "rust");
    let python = compose_for_wasi_sockets(Some(env!("LEASHED_PLUGIN_ITEMS_PYTHON")), "python");

    let tcp: [(&str, &str); 2] = [("DATABASE_URL", &plain), ("MYSQL_TLS_MODE", "disabled")];
    let tls: [(&str, &str); 3] =
        [("DATABASE_URL", &by_name), ("MYSQL_TLS_MODE", "verify-identity"), ("MYSQL_CA_PEM", &ca)];
    // verify-ca checks the chain but not the name, so the address works.
    let by_ca: [(&str, &str); 3] = [("DATABASE_URL", &plain), ("MYSQL_TLS_MODE", "verify-ca"), ("MYSQL_CA_PEM", &ca)];
    let refused: [(&str, &str); 3] =
        [("DATABASE_URL", &by_name), ("MYSQL_TLS_MODE", "verify-identity"), ("MYSQL_CA_PEM", &other_ca)];
    for (transport, envs, paths) in [
        ("tcp", &tcp[..], &COMPARED_PATHS[..]),
        ("tls", &tls[..], &COMPARED_PATHS[..]),
        ("verify-ca", &by_ca[..], &COMPARED_PATHS[..2]),
        ("a wrong CA", &refused[..], &COMPARED_PATHS[..1]),
    ] {
        let mut leashed = leashed_serve_with(envs);
        let stock = [StockServe::start(&rust, SERVE_WASI, envs), StockServe::start(&python, SERVE_WASI, envs)];
        for path in paths {
            let expected = leashed.get(path);
            for (served, plugin) in stock.iter().zip(["rust", "python"]) {
                let got = served.get(path);
                assert_same_reply(&got, &expected, &format!("{transport}, {plugin} on wasmtime serve, GET {path}"));
                assert_no_socket_to_mariadb(&[served.pid()], &format!("{transport} GET {path} ({plugin})"));
            }
        }
        if transport == "a wrong CA" {
            let refusal = leashed.get("/items/1").body;
            assert!(refusal.contains("TLS handshake with localhost failed: invalid peer certificate"), "{refusal}");
        } else if paths.len() == COMPARED_PATHS.len() {
            let streamed = stock[0].get("/items?stream=1");
            assert_eq!(streamed.body.lines().count() as u64, ITEMS, "{transport}: one NDJSON line per row");
        }
    }

    // Writes go through too: the ids come one after the other, whichever server wrote them.
    let stock = [StockServe::start(&rust, SERVE_WASI, &tls), StockServe::start(&python, SERVE_WASI, &tls)];
    let first = stock[0].request("POST", "/items", Some(r#"{"name":"plum","price":"1.10"}"#));
    let second = stock[1].request("POST", "/items", Some(r#"{"name":"kiwi","price":"0.40"}"#));
    assert_eq!((first.status, second.status), (201, 201), "{first:?} {second:?}");
    assert_eq!(new_id(&second), new_id(&first) + 1, "{first:?} {second:?}");
    let mut leashed = leashed_serve_with(&tls);
    assert_eq!(
        leashed.get(&format!("/items/{}", new_id(&second))),
        stock[0].get(&format!("/items/{}", new_id(&second)))
    );
    let bad = stock[1].request("POST", "/items", Some("{"));
    assert_eq!(bad, leashed.request("POST", "/items", Some("{")));
    for served in &stock {
        assert_no_socket_to_mariadb(&[served.pid()], "the POSTs");
    }
    let _ = std::fs::remove_file(rust);
    let _ = std::fs::remove_file(python);
}

/// Acceptance 3: a plugin that drops a connection before its reader traps on stock wasmtime
/// with the contract's message (as leashed's strict policy words it); the server goes on, and
/// after a good request holds no socket to MariaDB.
#[test]
fn the_strict_drop_rule_traps_on_stock_wasmtime() {
    let leaky = compose_for_wasi_sockets(Some(env!("LEASHED_FIXTURE_LEAKY_PLUGIN")), "leaky");
    let url = std::env::var("LEASHED_TEST_NATIVE_URL").unwrap();
    let mut served = StockServe::start(&leaky, SERVE_WASI, &[("DATABASE_URL", &url)]);
    let _ = std::fs::remove_file(&leaky);
    let trapped = served.get("/leak-reader");
    assert_eq!(trapped.status, 500, "{trapped:?}");
    let line = served.wait_for_log("resource has children", Duration::from_secs(10));
    assert!(line.contains("was dropped while its reader #"), "{line}");
    assert!(
        line.contains("still lent (strict close policy: drop the writer and the reader before the connection)"),
        "{line}"
    );
    assert_no_socket_to_mariadb(&[served.pid()], "the trap");
    assert_eq!(served.get("/ok"), Reply { status: 200, body: r#"{"ok":true}"#.into() });
    assert_no_socket_to_mariadb(&[served.pid()], "GET /ok");
}

/// The stock-command fixture composed with the stock MySQL component that
/// `leashed compose --for wasi-sockets` writes for the guest alone, plugged with the same
/// composition library: a wasi:cli command that imports only WASI. The stock MySQL component
/// satisfies both of the command's imports, leashed:mysql and leashed:net. Composed once per run.
fn stock_command() -> &'static Path {
    static COMMAND: OnceLock<PathBuf> = OnceLock::new();
    COMMAND.get_or_init(|| {
        let mysql = compose_for_wasi_sockets(None, "mysql");
        let command = std::fs::read(env!("LEASHED_FIXTURE_STOCK_COMMAND")).unwrap();
        let composed = plug(&std::fs::read(&mysql).unwrap(), "leashed:stock-mysql", &command, "the command").unwrap();
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("leashed-stock-command.wasm");
        std::fs::write(&path, composed).unwrap();
        let imports = imports_of(&path).imports;
        assert!(imports.iter().all(|name| name.starts_with("wasi:")), "{imports:?}");
        path
    })
}

/// The stock MySQL component runs one query under `wasmtime run`.
#[test]
fn stock_wasmtime_run_queries_through_the_stock_mysql_component() {
    let command = stock_command();
    let url = std::env::var("LEASHED_TEST_NATIVE_URL").unwrap();
    let sql = "SELECT 1, 'two', NULL, CAST(2.50 AS DECIMAL(4,2))";
    let out = wasmtime_run(command, "inherit-network", &[("DATABASE_URL", &url)], &[sql]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1\ttwo\tNULL\t2.50\nok\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success());
}

/// Socket failures on a stock runtime reach the MySQL client as leashed:net error codes.
#[test]
fn the_adapter_maps_socket_failures_onto_the_contracts_codes() {
    let command = stock_command();
    let url = |host: &str, port: u16| format!("mysql://user:secret@{host}:{port}/db");
    let silent = listener(silent);
    let resetting = listener(resetting);
    let cases: [(&str, String, &str, &str); 5] = [
        ("refused", url("127.0.0.1", closed_port()), "inherit-network", "connection-refused"),
        (
            "unresolvable",
            url("no-such-host.invalid", 3306),
            "inherit-network,allow-ip-name-lookup",
            "name-unresolvable",
        ),
        ("timed out", url("127.0.0.1", silent), "inherit-network", "timed-out"),
        ("reset", url("127.0.0.1", resetting), "inherit-network", "connection-reset"),
        ("denied", url("127.0.0.1", closed_port()), "tcp", "denied"),
    ];
    for (case, database_url, wasi, code) in cases {
        let envs =
            [("DATABASE_URL", database_url.as_str()), ("MYSQL_TLS_MODE", "disabled"), ("READ_TIMEOUT_MS", "300")];
        let started = Instant::now();
        let out = wasmtime_run(command, wasi, &envs, &["SELECT 1"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{case}: {stderr}");
        assert!(stderr.contains(&format!("error: socket error: {code}")), "{case}: {stderr}");
        assert!(!stderr.contains("panicked"), "{case}: {stderr}");
        if case == "timed out" {
            assert!(started.elapsed() < Duration::from_secs(30), "{case} took {:?}", started.elapsed());
        }
    }
}

/// The calls the MySQL client does not make, on a stock runtime: the addresses, one reader at a
/// time, an empty read refused, `shutdown(send)` and the peer's end of stream.
#[test]
fn the_adapter_keeps_the_rest_of_the_contract() {
    let peer = echo_peer::spawn_on_thread();
    let port = peer.port().to_string();
    let out = wasmtime_run(stock_command(), "inherit-network", &[], &["--net", "127.0.0.1", &port]);
    let expected = format!(
        "peer 127.0.0.1:{port}\nlocal 127.0.0.1 port>0=true\nsecond reader: invalid-state\nread(0): invalid-state\n\
         received hi!!ping then end of stream\nok\n"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected, "{}", String::from_utf8_lossy(&out.stderr));
}

/// `leashed serve` of a component composed for stock runtimes says, when it starts, why its
/// connects will be denied (leashed lends sockets only through leashed:net).
#[test]
fn leashed_serve_warns_about_a_component_composed_for_stock_runtimes() {
    let stock = compose_for_wasi_sockets(Some(env!("LEASHED_PLUGIN_ITEMS_RUST")), "warned");
    let mut served = Served::start(stock.to_str().unwrap(), &["--allow", &format!("127.0.0.1:{}", db_port())]);
    let _ = std::fs::remove_file(&stock);
    let line = served.wait_for_log("opens its own sockets with wasi:sockets", Duration::from_secs(5));
    assert!(line.contains("serve the plugin as built"), "{line}");
}

/// `wasmtime run --invoke` on components that use leashed:net directly, composed for
/// wasi:sockets: the well-behaved fixture reads the server's greeting, and the seed bug
/// (PyMySQL's: the connection dropped while its reader lives) traps with the contract's words.
#[test]
fn wasmtime_run_invokes_leashed_net_fixtures() {
    let port = db_port();
    let invoke = format!("run(\"127.0.0.1\", {port})");
    let well_behaved = compose_for_wasi_sockets(Some(env!("LEASHED_FIXTURE_WELL_BEHAVED")), "well-behaved");
    let out = invoke_on(&well_behaved, &invoke);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("ok(\"echoed "),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seed_bug = compose_for_wasi_sockets(Some(env!("LEASHED_FIXTURE_SEED_BUG")), "seed-bug");
    let out = invoke_on(&seed_bug, &invoke);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("resource has children: connection #1 was dropped while its reader #2 still lent"),
        "{stderr}"
    );
}

/// `wasmtime run -S inherit-network --invoke CALL COMPONENT`.
fn invoke_on(component: &Path, call: &str) -> std::process::Output {
    Command::new(leashed_tests::stock::stock_wasmtime())
        .args(["run", "-S", "inherit-network", "--invoke", call])
        .arg(component)
        .output()
        .expect("wasmtime run starts")
}
