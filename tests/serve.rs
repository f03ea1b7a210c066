//! `leashed serve` end to end: the real binary serving the example plugins (Rust and Python,
//! built from source by tests/build.rs) and the leaky fixture plugin, called with curl, against
//! the private MariaDB; the per-request audit in the log, the sockets in /proc, SIGTERM.

use leashed_tests::composed::assert_same_reply;
use leashed_tests::items::{ITEMS, items_table};
use leashed_tests::served::{Reply, Served, sockets_to_port};
use leashed_tests::{Account, url};
use std::time::Duration;

/// The flags that point a plugin at the private MariaDB.
fn database_args() -> Vec<String> {
    let url = url(Account::Native);
    let text = std::env::var("LEASHED_TEST_NATIVE_URL").unwrap();
    vec!["--allow".into(), format!("{}:{}", url.host, url.port), "--env".into(), format!("DATABASE_URL={text}")]
}

/// `leashed serve PLUGIN` against the private MariaDB. Session reuse is off: these tests check
/// that every socket is closed after each request (tests/session_reuse.rs covers the sockets
/// reuse keeps open on purpose).
fn serve(plugin: &str, extra: &[&str]) -> Served {
    items_table();
    let mut args = database_args();
    args.push("--no-session-reuse".into());
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Served::start(plugin, &args)
}

fn db_port() -> u16 {
    url(Account::Native).port
}

/// Acceptance 1: the Rust plugin answers curl with a row; the request's audit line shows 3
/// handles lent and released, 0 leaked; the process then holds no socket to MariaDB; SIGTERM
/// ends it with 0 and a final audit line with 0 open.
#[test]
fn rust_plugin_answers_with_a_row_and_a_clean_audit() {
    let mut served = serve(env!("LEASHED_PLUGIN_ITEMS_RUST"), &[]);
    let reply = served.get("/items/2");
    assert_eq!(reply, Reply { status: 200, body: r#"{"id":2,"name":"item-2","price":"0.50"}"#.into() });
    let line = served.wait_for_log("request=GET /items/2", Duration::from_secs(5));
    for field in ["status=200", "lent=3", "released=3", "leaked=0", "outcome=\"returned\""] {
        assert!(line.contains(field), "{field} missing from {line}");
    }
    assert_eq!(sockets_to_port(served.pid(), db_port()), 0, "a socket to MariaDB is left:\n{}", served.log());
    let (code, log) = served.terminate();
    assert_eq!(code, Some(0), "{log}");
    let last = log.lines().last().unwrap_or_default();
    assert_eq!(last, "audit: 1 request, 3 handles lent, 3 released, 0 open", "{log}");
}

/// Acceptance 2: the Python plugins give byte-identical answers to the Rust one, for rows,
/// misses, bad input, the buffered list, the streamed list and inserts: items-python on the
/// leashed client, and items-pymysql, PyMySQL from PyPI on lent sockets (issue 18), whose every
/// request is audited clean.
#[test]
fn python_plugins_answer_byte_for_byte_like_the_rust_one() {
    let mut rust = serve(env!("LEASHED_PLUGIN_ITEMS_RUST"), &[]);
    let streamed = rust.get("/items?stream=1");
    assert_eq!(streamed.body.lines().count() as u64, ITEMS, "one NDJSON line per row");
    for plugin in [env!("LEASHED_PLUGIN_ITEMS_PYTHON"), env!("LEASHED_PLUGIN_ITEMS_PYMYSQL")] {
        let mut python = serve(plugin, &[]);
        for path in ["/items/1", "/items/3000", "/items/99999", "/items/abc", "/items", "/items?stream=1", "/nowhere"] {
            assert_same_reply(&python.get(path), &rust.get(path), &format!("{plugin}: GET {path}"));
        }
        let first = rust.request("POST", "/items", Some(r#"{"name":"pear","price":"2.25"}"#));
        let second = python.request("POST", "/items", Some(r#"{"name":"fig","price":"0.75"}"#));
        assert_eq!((first.status, second.status), (201, 201), "{plugin}: {first:?} {second:?}");
        let id = |reply: &Reply| -> u64 {
            reply.body.trim_start_matches(r#"{"id":"#).trim_end_matches('}').parse().unwrap()
        };
        assert_eq!(id(&second), id(&first) + 1, "{plugin}: {first:?} {second:?}");
        assert_eq!(python.get(&format!("/items/{}", id(&first))), rust.get(&format!("/items/{}", id(&first))));
        let bad = (rust.request("POST", "/items", Some("{")), python.request("POST", "/items", Some("{")));
        assert_eq!(bad.0.status, 400);
        assert_eq!(bad.0, bad.1, "{plugin}");
        let (code, log) = python.terminate();
        assert_eq!(code, Some(0), "{log}");
        assert!(log.lines().last().unwrap_or_default().ends_with(", 0 open"), "{log}");
        assert!(!log.contains("leaked=1"), "{log}");
        assert!(log.contains("leaked=0"), "{log}");
    }
    let (code, log) = rust.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.lines().last().unwrap_or_default().ends_with(", 0 open"), "{log}");
}

/// Acceptance 3: a connection kept past the response is logged with the request and the
/// plugin's own creation site; with --deny-leaks the response is refused with 500, and the next
/// request succeeds. The socket is reclaimed and closed.
#[test]
fn a_leaked_connection_is_reported_and_refused_with_deny_leaks() {
    let mut served = serve(env!("LEASHED_FIXTURE_LEAKY_PLUGIN"), &["--deny-leaks"]);
    let reply = served.get("/leak-connection");
    assert_eq!(reply.status, 500, "{reply:?}");
    assert!(reply.body.contains("leaked"), "{reply:?}");
    let log = served.log();
    assert!(log.contains("request=GET /leak-connection status=500"), "{log}");
    assert!(log.contains("Direct leak: connection #1"), "{log}");
    assert!(log.contains("keep_connection"), "the plugin's own site is missing:\n{log}");
    assert_eq!(served.get("/ok"), Reply { status: 200, body: r#"{"ok":true}"#.into() });
    assert_eq!(sockets_to_port(served.pid(), db_port()), 0, "{}", served.log());
    let (code, log) = served.terminate();
    assert_eq!(code, Some(0), "{log}");
    let last = log.lines().last().unwrap_or_default();
    assert!(last.contains("3 leaked in 1 request (reclaimed, sockets closed; 1 refused with 500)"), "{last}");
    assert!(last.ends_with(", 0 open"), "{last}");
}

/// A Python plugin's leak names the request; the creation site runs from the guest through
/// leashed:mysql#open into the Python runtime, its interpreter frames folded into one line.
#[test]
fn a_python_leak_is_reported_with_interpreter_frames_folded() {
    let mut served = serve(env!("LEASHED_FIXTURE_LEAKY_PYTHON"), &["--deny-leaks"]);
    assert_eq!(served.get("/leak-connection").status, 500);
    let log = served.log();
    assert!(log.contains("request=GET /leak-connection status=500"), "{log}");
    assert!(log.contains("#0 leashed_guest::link::Link::connect"), "{log}");
    assert!(log.contains("leashed:mysql/connection@0.2.0#[static]connection.open"), "{log}");
    assert!(log.contains(" CPython interpreter frames …"), "{log}");
    assert!(!log.contains("_PyEval_EvalFrameDefault"), "interpreter frames are not folded:\n{log}");
    assert_eq!(served.get("/ok").status, 200, "{}", served.log());
    assert_eq!(sockets_to_port(served.pid(), db_port()), 0, "{}", served.log());
}

/// A suppression matching the leak's site lets it pass under --deny-leaks; it is still logged
/// and counted, as suppressed.
#[test]
fn a_suppressed_leak_passes_and_is_shown_as_suppressed() {
    let file = std::env::temp_dir().join(format!("leashed-suppressions-{}.txt", std::process::id()));
    std::fs::write(&file, "# the fixture keeps this on purpose\nleak:open_and_keep_*\n").unwrap();
    let mut served =
        serve(env!("LEASHED_FIXTURE_LEAKY_PLUGIN"), &["--deny-leaks", "--suppressions", file.to_str().unwrap()]);
    let reply = served.get("/leak-connection");
    let _ = std::fs::remove_file(&file);
    assert_eq!(reply.status, 200, "{reply:?}");
    let log = served.log();
    assert!(log.contains("leaked=0 suppressed=3"), "{log}");
    assert!(
        log.contains("suppressed leak (matches `open_and_keep_*`): connection #1 with reader #2, writer #3"),
        "{log}"
    );
    let (code, log) = served.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.lines().last().unwrap_or_default().contains(", 3 suppressed, 0 open"), "{log}");
}

/// --deny-leaks cannot refuse a response whose body passed the 1 MiB it holds back: it goes out,
/// and the leak is logged and counted as found after the response.
#[test]
fn a_leak_after_a_long_body_is_logged_not_refused() {
    let mut served = serve(env!("LEASHED_FIXTURE_LEAKY_PLUGIN"), &["--deny-leaks"]);
    let reply = served.get("/leak-with-big-body");
    assert_eq!((reply.status, reply.body.len()), (200, 2 << 20));
    served
        .wait_for_log("the response had already gone out, so --deny-leaks could not refuse it", Duration::from_secs(5));
    let (code, log) = served.terminate();
    assert_eq!(code, Some(0), "{log}");
    let last = log.lines().last().unwrap_or_default();
    assert!(last.contains("0 refused with 500, 1 found after the response had gone out)"), "{last}");
}

/// The seed bug as a plugin (a reader kept after its connection was dropped), under the
/// deferred policy: without --deny-leaks the response goes out, and the log names the reader.
#[test]
fn a_kept_reader_is_reported_under_the_deferred_policy() {
    let mut served = serve(env!("LEASHED_FIXTURE_LEAKY_PLUGIN"), &["--policy", "deferred"]);
    let reply = served.get("/leak-reader");
    assert_eq!(reply.status, 200, "{reply:?}");
    let log = served.log();
    assert!(log.contains("leaked=1"), "{log}");
    assert!(log.contains("reader #2"), "{log}");
    assert!(log.contains("keep_reader"), "the plugin's own site is missing:\n{log}");
    // Serve records only the drop sites a report can show (Policy::every_drop_site): the
    // connection dropped while its reader was lent is one, and it names the plugin's function.
    let dropped_at = log.split("dropped by the guest at:").nth(1).expect("the connection's drop site");
    let frames: String = dropped_at.lines().skip(1).take_while(|l| l.trim_start().starts_with('#')).collect();
    assert!(frames.contains("connect_and_keep_reader"), "{log}");
    assert_eq!(sockets_to_port(served.pid(), db_port()), 0, "{log}");
    assert_eq!(served.get("/ok").status, 200);
}

/// Acceptance 4: a trap, an endless loop, memory past the limit and a connect outside the
/// allowlist each get a 500/504 (or the plugin's own error) and one clear log line; the server
/// keeps answering and holds no socket afterwards.
#[test]
fn faults_get_500_or_504_and_the_server_keeps_serving() {
    let mut served = serve(env!("LEASHED_FIXTURE_LEAKY_PLUGIN"), &["--deadline", "2", "--memory-limit", "64"]);

    let trap = served.get("/trap");
    assert_eq!(trap.status, 500, "{trap:?}");
    assert!(trap.body.contains("trapped"), "{trap:?}");
    // The log says what kind of trap it was, with the panic's own words from the plugin's stderr.
    let line = served.wait_for_log("the plugin trapped: a panic (at leaky-plugin/src/lib.rs:", Duration::from_secs(5));
    assert!(line.contains("/trap was asked to trap); 0 handles it held were reclaimed"), "{line}");
    let log = served.log();
    assert!(log.contains("leashed::plugin: the plugin wrote to stderr:"), "{log}");

    let spin = served.get("/loop");
    assert_eq!(spin.status, 504, "{spin:?}");
    served.wait_for_log("ran past the deadline of 2s", Duration::from_secs(5));

    let grow = served.get("/grow");
    assert_eq!(grow.status, 500, "{grow:?}");
    served.wait_for_log("the plugin trapped: the per-request memory limit of 64 MiB", Duration::from_secs(5));

    let elsewhere = served.get("/connect-elsewhere?port=1");
    assert_eq!(elsewhere.status, 500, "{elsewhere:?}");
    served.wait_for_log("connecting to 127.0.0.1:1 was denied by the allowlist", Duration::from_secs(5));

    assert_eq!(served.get("/ok").status, 200, "{}", served.log());
    assert_eq!(sockets_to_port(served.pid(), db_port()), 0, "{}", served.log());
    let (code, log) = served.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.lines().last().unwrap_or_default().ends_with(", 0 open"), "{log}");
}

/// Outgoing wasi:http requests are denied by default, and reach a real HTTP server with
/// --allow-outbound-http.
#[test]
fn outbound_http_is_denied_unless_allowed() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let _ = stream.read(&mut [0; 4096]);
            let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
        }
    });
    let path = format!("/outbound?port={port}");
    let mut denied = serve(env!("LEASHED_FIXTURE_LEAKY_PLUGIN"), &[]);
    let reply = denied.get(&path);
    assert_eq!(reply.status, 500, "{reply:?}");
    assert!(reply.body.contains("HttpRequestDenied"), "{reply:?}");
    denied.wait_for_log("outgoing HTTP request denied", Duration::from_secs(5));
    let mut allowed = serve(env!("LEASHED_FIXTURE_LEAKY_PLUGIN"), &["--allow-outbound-http"]);
    assert_eq!(allowed.get(&path), Reply { status: 200, body: r#"{"outbound":204}"#.into() });
}

/// --log-format json: one JSON object per line, the access line with its fields.
#[test]
fn json_logs_carry_the_request_fields() {
    let mut served = serve(env!("LEASHED_PLUGIN_ITEMS_RUST"), &["--log-format", "json"]);
    assert_eq!(served.get("/items/3").status, 200);
    let log = served.log();
    let access = log
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .find(|v| v["target"] == "leashed::access")
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(access["request"], "GET /items/3");
    assert_eq!(
        (access["status"].as_u64(), access["lent"].as_u64(), access["leaked"].as_u64()),
        (Some(200), Some(3), Some(0))
    );
}

/// SIGTERM while a request outlives the shutdown timeout: it is cancelled (503) and reclaimed,
/// and the process still exits 0 with a final line that counts it.
#[test]
fn shutdown_cancels_what_outlives_its_timeout() {
    let served = serve(env!("LEASHED_FIXTURE_LEAKY_PLUGIN"), &["--deadline", "60", "--shutdown-timeout", "1"]);
    let client = served.status_in_background("/loop");
    std::thread::sleep(Duration::from_millis(500));
    let (code, log) = served.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(client.join().unwrap(), 503, "{log}");
    assert!(log.contains("cancelling them and reclaiming what they hold"), "{log}");
    let last = log.lines().last().unwrap_or_default();
    assert!(last.contains("0 trapped, 0 timed out, 1 cancelled at shutdown"), "{last}");
    assert!(last.ends_with(", 0 open"), "{last}");
}

/// --max-connections 0: the plugin's connect gets `limit-reached` (the plugin answers 500), and
/// the log says which per-request limit was reached.
#[test]
fn the_connection_limit_is_logged() {
    let mut served = serve(env!("LEASHED_FIXTURE_LEAKY_PLUGIN"), &["--max-connections", "0"]);
    let reply = served.get("/ok");
    assert_eq!(reply.status, 500, "{reply:?}");
    assert!(reply.body.contains("limit"), "{reply:?}");
    served.wait_for_log("the per-request limit of 0 open connections was reached", Duration::from_secs(5));
}

/// --max-concurrent 1: a request that arrives while the only slot is taken waits for it (within
/// its own deadline) instead of failing, and then runs.
#[test]
fn requests_over_max_concurrent_wait_for_a_slot() {
    let mut served = serve(env!("LEASHED_FIXTURE_LEAKY_PLUGIN"), &["--max-concurrent", "1", "--deadline", "3"]);
    let holder = served.status_in_background("/loop");
    std::thread::sleep(Duration::from_millis(500));
    let waited = served.get("/ok");
    assert_eq!(holder.join().unwrap(), 504);
    assert_eq!(waited.status, 200, "{waited:?}\n{}", served.log());
    let line = served.wait_for_log("request=GET /ok", Duration::from_secs(5));
    let ms: f64 = line.split("ms=\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap().parse().unwrap();
    assert!(ms >= 2000.0, "/ok should have waited for the slot: {line}");
}

/// Bad plugins are refused before serving, with one line and exit 2.
#[test]
fn unusable_components_are_refused_with_one_line() {
    let fixture = env!("LEASHED_FIXTURE_SEED_BUG");
    let out = std::process::Command::new(leashed_tests::served::leashed_bin())
        .args(["serve", fixture, "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("exports no `wasi:http/incoming-handler@0.2.x`"), "{stderr}");
    assert_eq!(stderr.lines().filter(|l| l.starts_with("error:")).count(), 1, "{stderr}");
}

/// The host-wide cap end to end (`--host-max-connections 1`). A session parked by one request
/// gives its place up to a later request that needs a new connection; a request that needs two
/// connections at once gets `limit-reached` for the second (the plugin answers 500 with it, and
/// the log names the cap); the server keeps serving. Without reuse, each closed connection gives
/// its place back.
#[test]
fn the_host_wide_connection_cap_refuses_past_it_and_places_come_back() {
    items_table();
    let mut args = database_args();
    args.extend(["--host-max-connections", "1", "--policy", "deferred"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut served = Served::start(env!("LEASHED_FIXTURE_LEAKY_PLUGIN"), &args);
    assert_eq!(served.get("/ok").status, 200, "{}", served.log());
    assert_eq!(sockets_to_port(served.pid(), db_port()), 1, "the parked session holds the only place");
    // A connect of its own (leashed:net, no parked session fits it): the parked one makes room.
    let reader = served.get("/leak-reader");
    assert_eq!(reader.status, 200, "{reader:?}\n{}", served.log());
    assert_eq!(sockets_to_port(served.pid(), db_port()), 0, "the parked session was closed for it");

    let refused = served.get("/two-connections");
    assert_eq!(refused.status, 500, "{refused:?}");
    assert!(refused.body.contains("second connection: socket error: limit-reached"), "{refused:?}");
    served.wait_for_log(
        "the host-wide limit of 1 open connections (--host-max-connections) was reached",
        Duration::from_secs(5),
    );
    assert_eq!(served.get("/ok").status, 200, "{}", served.log());
    let (code, log) = served.terminate();
    assert_eq!(code, Some(0), "{log}");

    let mut served = serve(env!("LEASHED_FIXTURE_LEAKY_PLUGIN"), &["--host-max-connections", "1"]);
    for path in ["/ok", "/leak-connection", "/ok", "/leak-connection", "/ok"] {
        assert_eq!(served.get(path).status, 200, "{path}: {}", served.log());
    }
    assert_eq!(sockets_to_port(served.pid(), db_port()), 0, "{}", served.log());
    let (code, log) = served.terminate();
    assert_eq!(code, Some(0), "{log}");
}
