//! PyMySQL from PyPI, unmodified (1.1.1 and 1.1.2, fetched by scripts/fetch-python-drivers), in a
//! componentize-py component on sockets leashed lends (guest/python/leashed_socket.py), run by
//! `leashed audit` under each close policy: on a plain connection, on TLS with verify-identity
//! against the private MariaDB's CA, and with the server's answer cut mid-result by the fault
//! proxy. Every cell's outcome is asserted; `--nocapture` prints the table.
//!
//! The app (tests/fixtures/pymysql-app) ends with `Connection.close()`, which sends COM_QUIT and
//! calls `_force_close()`; a cut answer reaches `_force_close()` from `_read_bytes`. That method
//! is where the versions differ: 1.1.1 closes the socket while its `makefile("rb")` stream lives
//! and only then lets the stream go (`self._sock.close(); self._sock = None; self._rfile = None`),
//! 1.1.2 closes the stream first.

use leashed_tests::fault_proxy::{Fault, FaultProxy, Opening, Phase};
use leashed_tests::{Account, url};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

const VERSIONS: [(&str, &str); 2] =
    [("1.1.1", env!("LEASHED_FIXTURE_PYMYSQL_1_1_1")), ("1.1.2", env!("LEASHED_FIXTURE_PYMYSQL_1_1_2"))];
const POLICIES: [&str; 3] = ["strict", "deferred", "reclaim"];
const PATHS: [Path; 3] = [Path::Plain, Path::Tls, Path::CutMidResult];

/// The answer, and the session's TLS version as the server sees it ('' without TLS).
const ANSWER_SQL: &str =
    "SELECT 41+1, VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_version'";
/// About 230 KB of rows, which the fault proxy cuts 4 KiB into the answer.
const ROWS_SQL: &str = "SELECT seq, REPEAT('x', 100) AS pymysql_fault_rows FROM seq_1_to_2000";

/// How the app reaches the server.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Path {
    /// Straight to the private MariaDB, without TLS.
    Plain,
    /// To `localhost` (the name the server's certificate holds), with `ssl={"ca": ...}`.
    Tls,
    /// Through the fault proxy, which cuts the server's answer to ROWS_SQL mid-result.
    CutMidResult,
}

/// What one `leashed audit` run printed.
struct Run {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

/// The `leashed` binary of this build.
fn leashed_bin() -> PathBuf {
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let bin = deps.parent().unwrap().join("leashed");
    assert!(bin.is_file(), "{} is missing: build it with `cargo build --release -p leashed`", bin.display());
    bin
}

/// `s` as a WAVE string literal.
fn wave(s: &str) -> String {
    let escaped = s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n").replace('\r', "\\r");
    format!("\"{escaped}\"")
}

fn server_url(host: &str, port: u16) -> String {
    let db = url(Account::Native);
    let password = db.password.as_deref().unwrap_or("");
    format!("mysql://{}:{password}@{host}:{port}/{}", db.user, db.database.as_deref().unwrap_or(""))
}

fn ca_pem() -> String {
    let path = std::env::var("LEASHED_TEST_TLS_CA").expect("LEASHED_TEST_TLS_CA is set (scripts/mariadb env)");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read the test CA {path}: {e}"))
}

/// Runs `run(url, sql, ca)` of `component` under `leashed audit --policy policy --deny-leaks`.
fn audit(component: &str, policy: &str, allow: &str, server: &str, sql: &str, ca: Option<&str>) -> Run {
    let ca = ca.map_or("none".to_string(), |pem| format!("some({})", wave(pem)));
    let call = format!("run({}, {}, {ca})", wave(server), wave(sql));
    let out = Command::new(leashed_bin())
        .args(["audit", component, "--allow", allow, "--policy", policy, "--deny-leaks", "--invoke", &call])
        .output()
        .expect("run leashed audit");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    Run { status: out.status.code(), stdout: text(&out.stdout), stderr: text(&out.stderr) }
}

/// Runs one cell of the table.
fn cell(component: &str, policy: &str, path: Path) -> Run {
    let db = url(Account::Native);
    match path {
        Path::Plain => {
            audit(component, policy, &db.allow_entry().to_string(), &server_url(&db.host, db.port), ANSWER_SQL, None)
        }
        Path::Tls => {
            let allow = format!("localhost:{}", db.port);
            audit(component, policy, &allow, &server_url("localhost", db.port), ANSWER_SQL, Some(&ca_pem()))
        }
        Path::CutMidResult => {
            let upstream: SocketAddr = format!("{}:{}", db.host, db.port).parse().unwrap();
            let runtime = tokio::runtime::Runtime::new().unwrap();
            let phase = Phase {
                server_after: Opening::Command { command: 0x03, marker: "pymysql_fault_rows" },
                server_skip: 4096,
                gated: false,
                client_from: None,
            };
            let proxy = runtime.block_on(FaultProxy::start(upstream, phase, Fault::CutServer { after: 0 }));
            let allow = format!("127.0.0.1:{}", proxy.addr.port());
            let run = audit(component, policy, &allow, &server_url("127.0.0.1", proxy.addr.port()), ROWS_SQL, None);
            assert!(proxy.hit().is_some(), "the proxy never cut the answer:\n{}{}", run.stdout, run.stderr);
            run
        }
    }
}

/// The cell as one line: what the call gave (or the trap), the call's leak report, the exit
/// status and the audit's last line.
fn summary(run: &Run) -> String {
    let result = if let Some((_, trap)) = run.stdout.split_once(" trapped: ") {
        let trap = trap.trim_end();
        let rule = trap.strip_prefix("the strict drop rule (resource has children: ").and_then(|t| {
            t.strip_suffix(" still lent (strict close policy: drop the writer and the reader before the connection))")
        });
        match rule {
            // "connection #1 (created at SITE) was dropped at SITE while its reader #N (created at SITE)"
            Some(rule) => format!("trap: strict drop rule, {}", rule.replace(" was dropped at ", " dropped at ")),
            None => format!("trap: {trap}"),
        }
    } else if let Some((_, value)) = run.stdout.split_once(" -> ") {
        let value = value.trim_end().replace("\\t", "\t").replace("\\'", "'").replace("\\\"", "\"");
        if let Some(answer) = value.strip_prefix("ok(\"").and_then(|v| v.strip_suffix("\")")) {
            match answer.split_once('\t') {
                Some((n, "")) => format!("ok {n}, plain"),
                Some((n, tls)) => format!("ok {n}, {tls}"),
                None => format!("ok {answer}"),
            }
        } else if let Some(error) = value.strip_prefix("err(\"").and_then(|v| v.strip_suffix("\")")) {
            // "OperationalError: (2013, 'Lost connection … (detail)')" → "err OperationalError 2013:
            // Lost connection …" (the detail names a port, which changes from run to run).
            let (class, rest) = error.split_once(": (").unwrap_or((error, ""));
            let (code, message) = rest.split_once(", ").unwrap_or((rest, ""));
            let message = message.trim_start_matches(['\'', '"']);
            let message = message.split(['\'', '"']).next().unwrap_or("").split(" (").next().unwrap_or("");
            format!("err {class} {code}: {message}")
        } else {
            value
        }
    } else {
        format!("no result: {}", run.stdout.trim_end())
    };
    let report = if run.stderr.contains("==leashed== no leaks in call #1") {
        "call clean".to_string()
    } else {
        let summary = run.stderr.lines().find(|l| l.starts_with("SUMMARY: leashed: ") && l.contains("in call #1"));
        match summary.and_then(|l| l.strip_prefix("SUMMARY: leashed: ")).and_then(|l| l.split_once(" in call #1")) {
            Some((what, _)) => format!("call leaked {what}"),
            None => "no call report".into(),
        }
    };
    let audit = run.stderr.lines().rev().find(|l| l.starts_with("audit: ")).unwrap_or("no audit line");
    format!("{result} | {report} | exit {} | {audit}", run.status.map_or("signal".into(), |c| c.to_string()))
}

/// The short form for the printed table.
fn table_cell(summary: &str) -> String {
    let mut parts = summary.split(" | ");
    let (result, report) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let result = result
        .replace(
            "trap: strict drop rule, connection #1 (created at pymysql/connections.py:649 connect) dropped at ",
            "strict trap: connection #1 dropped at ",
        )
        .replace(" (created at ", " (lent at ")
        .replace("pymysql/connections.py:", "connections.py:")
        .replace("ok 42, plain", "42")
        .replace("ok 42, TLSv1.3", "42 over TLSv1.3");
    let report =
        if report.starts_with("call leaked") { "its 2 live handles reclaimed after the trap" } else { "clean" };
    format!("{result}; {report}")
}

const TRAP_2: &str = "trap: strict drop rule, connection #1 (created at pymysql/connections.py:649 connect) \
    dropped at pymysql/connections.py:435 _force_close while its reader #2 (created at \
    pymysql/connections.py:665 connect) | \
    call leaked 2 handle(s) of 1 connection(s) not dropped by the guest | exit 3 | \
    audit: 3 handles lent, 1 released by the guest, 2 reclaimed after the trap, 0 open (their sockets are closed)";
const TRAP_4: &str = "trap: strict drop rule, connection #1 (created at pymysql/connections.py:649 connect) \
    dropped at pymysql/connections.py:435 _force_close while its reader #4 (created at \
    pymysql/connections.py:900 _request_authentication) | \
    call leaked 2 handle(s) of 1 connection(s) not dropped by the guest | exit 3 | \
    audit: 4 handles lent, 2 released by the guest, 2 reclaimed after the trap, 0 open (their sockets are closed)";
const PLAIN_42: &str = "ok 42, plain | call clean | exit 0 | audit: 3 handles lent, 3 released, 0 open";
const TLS_42: &str = "ok 42, TLSv1.3 | call clean | exit 0 | audit: 4 handles lent, 4 released, 0 open";
const CUT: &str = "err OperationalError 2013: Lost connection to MySQL server during query | call clean | exit 0 | audit: 3 handles lent, 3 released, 0 open";

/// What each cell must end with, and why.
///
/// - 1.1.1 under strict traps in `_force_close`: `self._sock.close()` drops connection #1 while
///   the `makefile("rb")` stream (`_rfile`) still holds its reader. On a plain connection that is
///   reader #2 (then writer #3, lent by the first `sendall`). On TLS, reader #2 is the plain
///   stream, given back when `wrap_socket` detaches the plain socket (as CPython's detach cuts
///   its files off), and the stream of the TLS socket is reader #4. The same holds when the
///   server cuts the answer: `_read_bytes` sees the short read and calls `_force_close()`.
/// - 1.1.1 under deferred and reclaim is clean: the host lets the connection go while its reader
///   lives (deferred keeps the socket open for it, reclaim closes it at once), and the next line,
///   `self._rfile = None`, frees the stream on CPython's refcount, which drops the reader within
///   the same call without reading from it, so there is no leak and no late use to report. This
///   is what CPython does with the OS socket too; on PyPy the reader would live until a
///   collection, which only strict makes visible.
/// - 1.1.2 closes `_rfile` before the socket, so it is clean under every policy.
/// - Every run has `--deny-leaks`, so a clean cell exits 0, and a trap exits 3 rather than 1:
///   the handles the trapped call never dropped count as its leaks.
/// - A cut answer: PyMySQL raises OperationalError 2013 (lost connection during query), which
///   the app returns as its error; the audit is as for a close.
fn expected(version: &str, policy: &str, path: Path) -> &'static str {
    match (version, policy, path) {
        ("1.1.1", "strict", Path::Plain | Path::CutMidResult) => TRAP_2,
        ("1.1.1", "strict", Path::Tls) => TRAP_4,
        (_, _, Path::Plain) => PLAIN_42,
        (_, _, Path::Tls) => TLS_42,
        (_, _, Path::CutMidResult) => CUT,
    }
}

/// PyMySQL 1.1.1 and 1.1.2 × strict, deferred and reclaim × plain, TLS and a cut answer: every
/// cell ends as `expected` says, and the table is printed.
#[test]
fn pymysql_outcomes_under_every_close_policy() {
    let mut rows = Vec::new();
    let mut wrong = Vec::new();
    for (version, component) in VERSIONS {
        for policy in POLICIES {
            let mut cells = Vec::new();
            for path in PATHS {
                let run = cell(component, policy, path);
                let got = summary(&run);
                if got != expected(version, policy, path) {
                    wrong.push(format!(
                        "PyMySQL {version}, {policy}, {path:?}:\n  got      {got}\n  expected {}\n{}{}",
                        expected(version, policy, path),
                        run.stdout,
                        run.stderr
                    ));
                }
                cells.push(table_cell(&got));
            }
            rows.push(format!("| {version} | {policy} | {} |", cells.join(" | ")));
        }
    }
    eprintln!("| PyMySQL | policy | plain | TLS (verify-identity) | server cuts the answer mid-result |");
    eprintln!("|---|---|---|---|---|");
    for row in &rows {
        eprintln!("{row}");
    }
    assert!(wrong.is_empty(), "{} cell(s) differ:\n{}", wrong.len(), wrong.join("\n"));
}

/// The strict trap of 1.1.1 at close, as `leashed audit` prints it: the call traps on the drop
/// rule naming connection #1 and its reader #2 with PyMySQL's own lines (the socket module
/// attaches the Python frames), and the report lists both as reclaimed after the trap, with
/// their Python creation sites and every socket closed. Printed for the README.
#[test]
fn pymysql_1_1_1_under_strict_traps_at_close_naming_its_reader() {
    let run = cell(VERSIONS[0].1, "strict", Path::Plain);
    eprintln!("{}{}", run.stdout, run.stderr);
    assert_eq!(run.status, Some(3), "a trap under --deny-leaks");
    let trap = run.stdout.lines().find(|l| l.contains(" trapped: ")).expect("a trap line");
    assert!(
        trap.contains("trapped: the strict drop rule (resource has children: connection #1 (created at "),
        "{trap}"
    );
    assert!(trap.contains(" while its reader #2 (created at "), "{trap}");
    // The sites name PyMySQL's own lines (leashed:net/sites), not only the interpreter's frames.
    assert!(trap.contains("was dropped at pymysql/connections.py:435 _force_close while"), "{trap}");
    assert!(trap.contains("(created at pymysql/connections.py:665 connect)"), "{trap}");
    for frames in ["#1 pymysql/connections.py:649 connect\n", "#1 pymysql/connections.py:665 connect\n"] {
        assert!(run.stderr.contains(frames), "{frames:?} missing from:\n{}", run.stderr);
    }
    assert!(run.stderr.contains(" app.py:41 run\n"), "{}", run.stderr);
    assert!(run.stderr.contains("Direct leak: connection #1 to 127.0.0.1:"), "{}", run.stderr);
    assert!(run.stderr.contains("Leaked reader #2 of connection #1 (still lent)"), "{}", run.stderr);
    assert!(run.stderr.contains("teardown: every socket is closed (checked against /proc/self/fd)"), "{}", run.stderr);
}

/// The TLS cells verify for real: the same app refuses a server whose certificate another CA
/// signed, and a server reached as 127.0.0.1 (its certificate names only localhost); both end
/// with PyMySQL's "Can't connect" and every handle given back.
#[test]
fn tls_checks_the_ca_and_the_host_name() {
    let db = url(Account::Native);
    let other_ca = std::env::var("LEASHED_TEST_TLS_OTHER_CA").expect("LEASHED_TEST_TLS_OTHER_CA is set");
    let other_ca = std::fs::read_to_string(other_ca).unwrap();
    let component = VERSIONS[1].1;
    let localhost = format!("localhost:{}", db.port);
    let cases = [
        (localhost.as_str(), server_url("localhost", db.port), other_ca, "UnknownIssuer"),
        (&db.allow_entry().to_string()[..], server_url(&db.host, db.port), ca_pem(), "certificate not valid for name"),
    ];
    for (allow, server, ca, reason) in cases {
        let run = audit(component, "strict", allow, &server, ANSWER_SQL, Some(&ca));
        assert!(run.stdout.contains("-> err(\"OperationalError: (2003, "), "{}", run.stdout);
        assert!(run.stdout.contains("t connect to MySQL server on "), "{}", run.stdout);
        assert!(run.stdout.contains(reason), "{}", run.stdout);
        assert_eq!(run.status, Some(0), "{}", run.stderr);
        assert!(run.stderr.ends_with("audit: 3 handles lent, 3 released, 0 open\n"), "{}", run.stderr);
    }
}

/// The unit tests of leashed_socket's pure-Python logic (guest/python/test_leashed_socket.py:
/// timeouts, errors, ssl verify modes, refusals) pass on the machine's python3.
#[test]
fn leashed_socket_unit_tests_pass() {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = Command::new(&python)
        .arg(root.join("guest/python/test_leashed_socket.py"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.trim_end().ends_with("OK"), "{stderr}");
}
