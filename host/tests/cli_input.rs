//! `leashed query` as a new user runs it in a shell: SQL from standard input or a file, the
//! password from a file or the environment, output into a pipe that closes early, and a result
//! too large for the guest's memory. Against the private MariaDB (`LEASHED_TEST_*`, set by
//! scripts/test).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};

/// The password warning the mysql client also prints.
const PASSWORD_WARNING: &str = "warning: a password on the command line can be seen by other users";

fn native() -> String {
    std::env::var("LEASHED_TEST_NATIVE_URL").expect("LEASHED_TEST_NATIVE_URL is not set: run scripts/test")
}

/// The native test URL without its password, and the password.
fn native_without_password() -> (String, String) {
    let url = native();
    let (scheme_user, rest) = url.split_once('@').unwrap();
    let (user_part, password) = scheme_user.rsplit_once(':').unwrap();
    (format!("{user_part}@{rest}"), password.to_string())
}

fn leashed() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_leashed"));
    command.env_remove("LEASHED_URL").env_remove("DATABASE_URL");
    command
}

fn with_stdin(mut command: Command, input: &str) -> Output {
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn temp_file(name: &str, contents: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("leashed-{}-{name}", std::process::id()));
    std::fs::write(&path, contents).unwrap();
    path
}

/// SQL comes from the arguments, from standard input, or from --file (a path, or `-`).
#[test]
fn sql_comes_from_stdin_or_a_file() {
    let script = "SELECT 41 + 1 AS answer;\nSELECT 'two' AS second;\n";
    let mut piped = leashed();
    piped.args(["query", "--url", &native(), "--format", "json"]);
    let out = with_stdin(piped, script);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("[[42]]") && stdout.contains(r#"[["two"]]"#), "{stdout}");

    let file = temp_file("script.sql", script);
    let out = leashed().args(["query", "--url", &native(), "--format", "json", "--file"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), stdout, "--file gives what standard input gives");

    let mut dash = leashed();
    dash.args(["query", "--url", &native(), "--format", "json", "--file", "-"]);
    assert_eq!(text(&with_stdin(dash, script).stdout), stdout, "--file - reads standard input");

    // Wrong input is a usage error with a reason.
    let mut empty = leashed();
    empty.args(["query", "--url", &native()]);
    let out = with_stdin(empty, "  \n");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("the SQL is empty"), "{}", text(&out.stderr));
    let out = leashed().args(["query", "--url", &native(), "--file", "/no/such.sql"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read /no/such.sql"), "{}", text(&out.stderr));
    let out = leashed().args(["query", "--url", &native(), "--file"]).arg(&file).arg("SELECT 1").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "--file and SQL arguments together");
    let _ = std::fs::remove_file(file);
}

/// The password can come from a file or from the environment; a password on the command line
/// works but draws a warning.
#[test]
fn the_password_need_not_be_on_the_command_line() {
    let (bare, password) = native_without_password();
    let select = ["--format", "json", "SELECT CURRENT_USER() AS who"];

    let on_command_line = leashed().args(["query", "--url", &native()]).args(select).output().unwrap();
    assert_eq!(on_command_line.status.code(), Some(0), "{}", text(&on_command_line.stderr));
    assert!(text(&on_command_line.stderr).contains(PASSWORD_WARNING), "{}", text(&on_command_line.stderr));

    let file = temp_file("password", &format!("{password}\n"));
    let from_file =
        leashed().args(["query", "--url", &bare, "--password-file"]).arg(&file).args(select).output().unwrap();
    let from_leashed_url = leashed().env("LEASHED_URL", native()).arg("query").args(select).output().unwrap();
    let from_database_url = leashed().env("DATABASE_URL", native()).arg("query").args(select).output().unwrap();
    for (how, out) in [("file", &from_file), ("LEASHED_URL", &from_leashed_url), ("DATABASE_URL", &from_database_url)] {
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{how}: {stderr}");
        assert!(!stderr.contains(PASSWORD_WARNING), "{how}: {stderr}");
        assert_eq!(out.stdout, on_command_line.stdout, "{how}");
    }

    let wrong = temp_file("wrong-password", "not-the-password\n");
    let out = leashed().args(["query", "--url", &bare, "--password-file"]).arg(&wrong).args(select).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("ERROR 1045"), "{}", text(&out.stderr));
    let out = leashed().args(["query", "SELECT 1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no server given"), "{}", text(&out.stderr));
    let _ = std::fs::remove_file(file);
    let _ = std::fs::remove_file(wrong);
}

/// `leashed query … | head -2`: the reader goes away; leashed stops quietly (exit 0, no panic,
/// no "Broken pipe"), still closes its connection, and the audit says 0 open.
#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let mut child = leashed()
        .args(["query", "--url", &native(), "SELECT seq FROM seq_1_to_100000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.next().unwrap().unwrap().starts_with("+-----"));
    assert!(lines.next().unwrap().unwrap().starts_with("| seq "));
    drop(lines);
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{stderr}");
    assert_eq!(stderr.lines().last(), Some("audit: 3 handles lent, 3 released, 0 open"), "{stderr}");
}

/// Results print as their rows arrive (as `mysql --quick` does): 100 rows of 1 MB each print
/// whole in both formats under a 32 MiB guest memory limit, which a buffered result would pass.
#[test]
fn large_results_stream_within_the_memory_limit() {
    for format in ["table", "json"] {
        let mut child = leashed()
            .args(["query", "--url", &native(), "--memory-limit", "32", "--format", format])
            .arg("SELECT seq, REPEAT('x', 1000000) AS big FROM seq_1_to_100")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (mut bytes, mut big_values) = (0usize, 0usize);
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).unwrap() > 0 {
            bytes += line.len();
            big_values += runs_of_x(&line, 1_000_000);
            line.clear();
        }
        let out = child.wait_with_output().unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{format}: {stderr}");
        assert!(bytes > 100_000_000, "{format}: only {bytes} bytes printed");
        assert!(big_values >= 100, "{format}: {big_values} values of 1 MB");
        assert_eq!(stderr.lines().last(), Some("audit: 3 handles lent, 3 released, 0 open"), "{format}: {stderr}");
    }
}

/// How many runs of at least `len` x's `bytes` holds.
fn runs_of_x(bytes: &[u8], len: usize) -> usize {
    bytes.split(|&b| b != b'x').filter(|run| run.len() >= len).count()
}

/// A result that cannot stream (a prepared statement's) and does not fit in the guest's memory
/// ends with one clear line, not an abort message or a raw trap, and the last line says the
/// host reclaimed everything.
#[test]
fn a_result_too_large_for_the_guest_is_a_clear_error() {
    let out = leashed()
        .args(["query", "--url", &native(), "--memory-limit", "64", "--prepared"])
        .arg("SELECT REPEAT('x', 1000000) AS big FROM seq_1_to_200")
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: the result does not fit in the guest's memory limit (64 MiB); add a LIMIT"),
        "{stderr}"
    );
    for raw in ["unreachable", "memory allocation of", "panicked", "wasm trap"] {
        assert!(!stderr.contains(raw), "{raw:?} in: {stderr}");
    }
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.ends_with("reclaimed after the trap, 0 open; every socket is closed (checked in /proc/self/fd)"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    let out = leashed().args(["query", "--url", &native(), "--memory-limit", "0", "SELECT 1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// `--buffered` sends the script as one multi-statement query: a compound statement, which the
/// splitting at `;` would cut, runs whole.
#[test]
fn buffered_runs_a_compound_statement_whole() {
    let name = format!("leashed_p{}", std::process::id());
    let script = format!(
        "CREATE PROCEDURE {name}() BEGIN SELECT 1 AS a; SELECT 2 AS b; END; CALL {name}(); DROP PROCEDURE {name}"
    );
    let out =
        leashed().args(["query", "--url", &native(), "--format", "json", "--buffered", &script]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(r#""rows":[[1]]"#) && stdout.contains(r#""rows":[[2]]"#), "{stdout}");
    let split = leashed().args(["query", "--url", &native(), &script]).output().unwrap();
    assert_eq!(split.status.code(), Some(1), "split at `;`, the procedure body is cut: {}", text(&split.stderr));
}
