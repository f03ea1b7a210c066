//! jco on Node.js: the example plugin composed `--for wasi-sockets` runs under
//! `jco serve --isolate-requests instance` (jco 1.35.0 from npm, scripts/install-jco), a fresh
//! instance per request on the preview2-shim's node:net sockets, against the private MariaDB.
//!
//! - Every compared request, and the writes, answer byte for byte as `leashed serve` does.
//! - After every request no process of jco's holds a socket to MariaDB.
//! - A database that refuses gets the same 500 and the same words on both.
//!
//! Skipped, saying so, only when scripts/install-jco could not reach the npm registry.

use leashed_tests::composed::{
    COMPARED_PATHS, assert_no_socket_to_mariadb, assert_same_reply, compose_for_wasi_sockets, db_port,
    leashed_serve_with, new_id,
};
use leashed_tests::items::{ITEMS, items_table};
use leashed_tests::jco::{JcoServe, jco_binary};
use leashed_tests::served::Served;
use leashed_tests::stock::closed_port;

/// One test, so that its POSTs cannot race another test's comparisons of the list.
#[test]
fn jco_serve_answers_like_leashed_serve_and_keeps_no_socket() {
    let jco = match jco_binary() {
        Ok(jco) => jco,
        Err(why) => {
            eprintln!("SKIPPED: jco is not installed ({why})");
            return;
        }
    };
    items_table();
    let url = std::env::var("LEASHED_TEST_NATIVE_URL").unwrap();
    let envs: [(&str, &str); 2] = [("DATABASE_URL", &url), ("MYSQL_TLS_MODE", "disabled")];
    let rust = compose_for_wasi_sockets(Some(env!("LEASHED_PLUGIN_ITEMS_RUST")), "jco-rust");
    let mut leashed = leashed_serve_with(&envs);
    let served = JcoServe::start(&jco, &rust, &envs);
    let pids = served.pids();
    assert!(pids.len() >= 2, "jco serve and the node process it starts: {pids:?}\n{}", served.log());

    for path in COMPARED_PATHS {
        let expected = leashed.get(path);
        assert_same_reply(&served.get(path), &expected, &format!("jco, GET {path}"));
        assert_no_socket_to_mariadb(&pids, &format!("jco GET {path}"));
    }
    let streamed = served.get("/items?stream=1");
    assert_eq!(streamed.body.lines().count() as u64, ITEMS, "one NDJSON line per row");

    // Writes: the ids follow each other whichever server wrote them, and each reads the other's.
    let first = served.request("POST", "/items", Some(r#"{"name":"fig","price":"2.10"}"#));
    let second = leashed.request("POST", "/items", Some(r#"{"name":"lime","price":"0.30"}"#));
    assert_eq!((first.status, second.status), (201, 201), "{first:?} {second:?}");
    assert_eq!(new_id(&second), new_id(&first) + 1, "{first:?} {second:?}");
    for id in [new_id(&first), new_id(&second)] {
        assert_eq!(served.get(&format!("/items/{id}")), leashed.get(&format!("/items/{id}")));
    }
    assert_eq!(served.request("POST", "/items", Some("{")), leashed.request("POST", "/items", Some("{")));
    assert_no_socket_to_mariadb(&pids, "the POSTs");
    drop(served);

    // A database that refuses: the same status and words, and the server goes on.
    let refused = url.replacen(&format!(":{}/", db_port()), &format!(":{}/", closed_port()), 1);
    let envs: [(&str, &str); 2] = [("DATABASE_URL", &refused), ("MYSQL_TLS_MODE", "disabled")];
    let served = JcoServe::start(&jco, &rust, &envs);
    let mut leashed = leashed_serve_refused(&refused);
    let expected = leashed.get("/items/1");
    assert_eq!(expected.status, 500, "{expected:?}");
    assert_eq!(served.get("/items/1"), expected);
    assert_eq!(served.get("/nowhere").status, 404);
    let _ = std::fs::remove_file(rust);
}

/// `leashed serve` pointed at a closed port, allowed to try it.
fn leashed_serve_refused(url: &str) -> Served {
    let allowed = url.split('@').nth(1).and_then(|rest| rest.split('/').next()).unwrap();
    let env = format!("DATABASE_URL={url}");
    Served::start(
        env!("LEASHED_PLUGIN_ITEMS_RUST"),
        &["--allow", allowed, "--env", &env, "--env", "MYSQL_TLS_MODE=disabled"],
    )
}
