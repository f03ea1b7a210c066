//! The `leashed` binary as a user runs it: output formats, exit codes, error messages, and the
//! audit line, against the private MariaDB (URLs from `LEASHED_TEST_*_URL`, set by scripts/test).

use std::process::{Command, Output};

fn server_url(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set: run the tests with scripts/test"))
}

fn native() -> String {
    server_url("LEASHED_TEST_NATIVE_URL")
}

fn ed25519() -> String {
    server_url("LEASHED_TEST_ED25519_URL")
}

fn leashed(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_leashed")).args(args).output().expect("run leashed")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// stderr without the warning about a password on the command line (these tests pass the test
/// URL, password included, with --url; `cli_input.rs` tests the warning itself).
fn stderr_text(bytes: &[u8]) -> String {
    text(bytes)
        .lines()
        .filter(|l| !l.starts_with("warning: a password on the command line"))
        .map(|l| format!("{l}\n"))
        .collect()
}

const TYPES_QUERY: &str = "SELECT 1, 'a', NULL, 1.50, -9223372036854775808, 18446744073709551615, \
     CAST('2024-02-29 23:59:59.123456' AS DATETIME(6)), TIMEDIFF('838:59:59','00:00:00'), x'00ff'";
const TYPES_ROW: &str = r#"[1,"a",null,"1.50",-9223372036854775808,18446744073709551615,"2024-02-29 23:59:59.123456","838:59:59",{"base64":"AP8="}]"#;

/// The JSON row of mixed types is exact, for both auth plugins, and the audit says 0 open.
#[test]
fn json_row_is_exact_for_both_plugins() {
    for url in [native(), ed25519()] {
        let out = leashed(&["query", "--url", &url, "--format", "json", TYPES_QUERY]);
        assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(stdout.starts_with(r#"{"results":[{"columns":[{"name":"1","type":"INT"},"#), "{stdout}");
        assert!(
            stdout.contains(&format!(r#""rows":[{TYPES_ROW}],"affected_rows":0,"last_insert_id":0,"warnings":0}}]}}"#)),
            "{stdout}"
        );
        assert_eq!(stderr_text(&out.stderr).trim(), "audit: 3 handles lent, 3 released, 0 open");
    }
}

/// Table output looks like the mysql client's.
#[test]
fn table_output_is_boxed() {
    let out = leashed(&["query", "--url", &native(), "SELECT 1 AS n, 'abc' AS s, NULL AS z"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        "+---+-----+------+\n| n | s   | z    |\n+---+-----+------+\n| 1 | abc | NULL |\n+---+-----+------+\n1 row in set\n"
    );
}

/// Two statements give two result sets; SQL given as several words is joined.
#[test]
fn multi_statement_gives_two_result_sets() {
    let out = leashed(&["query", "--url", &native(), "--format", "json", "SELECT", "1;", "SELECT", "2"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.matches(r#""columns""#).count(), 2, "{stdout}");
    assert!(stdout.contains(r#""rows":[[1]]"#) && stdout.contains(r#""rows":[[2]]"#), "{stdout}");
    assert!(stdout.find("[[1]]") < stdout.find("[[2]]"));
}

/// When the second statement fails: the first set is printed, then the error; exit code 1.
#[test]
fn error_after_first_set_prints_both() {
    let out = leashed(&["query", "--url", &native(), "--format", "json", "SELECT 1; SELECT * FROM nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains(r#""rows":[[1]]"#));
    let stderr = stderr_text(&out.stderr);
    assert!(stderr.starts_with("ERROR 1146 (42S02): Table 'leashed_test.nope' doesn't exist\n"), "{stderr}");
    assert!(stderr.ends_with("0 open\n"), "{stderr}");
}

/// A wrong password: the server's 1045, exit 1, nothing left open.
#[test]
fn wrong_password_is_error_1045_with_nothing_open() {
    let url = native().replacen("native-secret", "wrong", 1);
    let out = leashed(&["query", "--url", &url, "SELECT 1"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = stderr_text(&out.stderr);
    assert!(stderr.starts_with("ERROR 1045 (28000): Access denied for user 'leashed_native'"), "{stderr}");
    assert!(stderr.ends_with("audit: 3 handles lent, 3 released, 0 open\n"), "{stderr}");
}

/// An unreachable server: a one-line error, exit 1.
#[test]
fn unreachable_server_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("mysql://u:p@127.0.0.1:{port}/db");
    let out = leashed(&["query", "--url", &url, "SELECT 1"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr_text(&out.stderr),
        format!(
            "error: cannot talk to 127.0.0.1:{port}: connection refused\naudit: 0 handles lent, 0 released, 0 open\n"
        )
    );
}

/// Usage errors exit with 2 and say what is wrong, never with a panic.
#[test]
fn usage_errors_exit_2_with_a_reason() {
    let empty_component = std::env::temp_dir().join(format!("leashed-empty-{}.wasm", std::process::id()));
    // The smallest valid component: header only. It exports nothing.
    std::fs::write(&empty_component, b"\0asm\x0d\x00\x01\x00").unwrap();
    let core_module = std::env::temp_dir().join(format!("leashed-core-{}.wasm", std::process::id()));
    std::fs::write(&core_module, b"\0asm\x01\x00\x00\x00").unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["query", "--url", "localhost:3306", "SELECT 1"], "malformed URL"),
        (&["query", "--url", "mysql://u:p@h:notaport/db", "SELECT 1"], "malformed URL 'mysql://u:***@h:notaport/db'"),
        (
            &["query", "--url", &native(), "--component", "/no/such.wasm", "SELECT 1"],
            "component file '/no/such.wasm' does not exist",
        ),
        (
            &["query", "--url", &native(), "--component", empty_component.to_str().unwrap(), "SELECT 1"],
            "does not export the leashed:mysql client",
        ),
        (
            &["query", "--url", &native(), "--component", core_module.to_str().unwrap(), "SELECT 1"],
            "is a core WebAssembly module, not a component",
        ),
    ];
    for (args, expected) in cases {
        let out = leashed(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: expected '{expected}' in: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let _ = std::fs::remove_file(empty_component);
    let _ = std::fs::remove_file(core_module);
}

/// `--help` explains the command, its URL format and exit codes.
#[test]
fn help_explains_url_and_exit_codes() {
    let out = leashed(&["query", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for needle in ["mysql://USER:PASSWORD@HOST:PORT/DB", "--format", "Exit status", "--component"] {
        assert!(help.contains(needle), "--help lacks {needle}: {help}");
    }
}

/// `--prepared` runs the SQL through the binary protocol with `--param` values bound in order,
/// and the row prints exactly as the same row from the text protocol.
#[test]
fn prepared_with_params_matches_the_text_protocol() {
    let prepared = leashed(&[
        "query",
        "--url",
        &native(),
        "--format",
        "json",
        "--prepared",
        "--param",
        "int:1",
        "--param",
        "null",
        "--param",
        "2024-02-29 23:59:59.123456",
        "--param",
        "hex:00ff",
        "SELECT ? AS n, ? AS z, CAST(? AS DATETIME(6)) AS dt, CAST(? AS BINARY) AS b, CAST(3.1415927 AS FLOAT) AS f",
    ]);
    assert_eq!(prepared.status.code(), Some(0), "stderr: {}", text(&prepared.stderr));
    let text_protocol = leashed(&[
        "query",
        "--url",
        &native(),
        "--format",
        "json",
        "SELECT 1 AS n, NULL AS z, CAST('2024-02-29 23:59:59.123456' AS DATETIME(6)) AS dt, \
         CAST(x'00ff' AS BINARY) AS b, CAST(3.1415927 AS FLOAT) AS f",
    ]);
    let rows = |out: &Output| {
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
        doc["results"][0]["rows"].clone()
    };
    assert_eq!(
        rows(&prepared),
        serde_json::json!([[1, null, "2024-02-29 23:59:59.123456", {"base64": "AP8="}, 3.14159]])
    );
    assert_eq!(rows(&prepared), rows(&text_protocol));
    assert_eq!(stderr_text(&prepared.stderr).trim(), "audit: 3 handles lent, 3 released, 0 open");

    let usage = leashed(&["query", "--url", &native(), "--prepared", "--param", "int:x", "SELECT ?"]);
    assert_eq!(usage.status.code(), Some(2));
    assert!(text(&usage.stderr).contains("--param int:x: not a signed 64-bit integer"), "{}", text(&usage.stderr));
}
