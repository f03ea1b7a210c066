//! `leashed audit` as a plugin author runs it, on the fixture components: exit codes with and
//! without --deny-leaks, the per-call and teardown reports, and the JSON report.

use leashed_tests::echo_peer;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The `leashed` binary of this build (cargo builds it for the host crate's own CLI tests).
fn leashed_bin() -> PathBuf {
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let bin = deps.parent().unwrap().join("leashed");
    assert!(bin.is_file(), "{} is missing: run the tests with scripts/test (cargo test --workspace)", bin.display());
    bin
}

fn audit(fixture: &str, peer: SocketAddr, extra: &[&str], calls: &[&str]) -> Output {
    let mut cmd = Command::new(leashed_bin());
    cmd.arg("audit").arg(fixture).args(["--allow", &format!("127.0.0.1:{}", peer.port())]).args(extra);
    for call in calls {
        cmd.args(["--invoke", call]);
    }
    cmd.output().unwrap()
}

fn run(peer: SocketAddr) -> String {
    format!("run(\"127.0.0.1\", {})", peer.port())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The seed bug under deferred with --deny-leaks: exit 3, the leak on stderr, the JSON report
/// with the leaked reader and every socket closed after teardown.
#[test]
fn deny_leaks_exits_3_and_writes_the_json_report() {
    let peer = echo_peer::spawn_on_thread();
    let json_path = std::env::temp_dir().join(format!("leashed-audit-{}.json", std::process::id()));
    let out = audit(
        env!("LEASHED_FIXTURE_SEED_BUG"),
        peer,
        &["--policy", "deferred", "--deny-leaks", "--audit-json", json_path.to_str().unwrap()],
        &[&run(peer)],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(text(&out.stdout), format!("{} -> ok(\"closed (or so it thinks)\")\n", run(peer)));
    assert!(stderr.contains("Direct leak: connection #1"), "{stderr}");
    assert!(stderr.contains("teardown: every socket is closed (checked against /proc/self/fd)"), "{stderr}");
    assert!(
        stderr.ends_with(
            "audit: 3 handles lent, 2 released by the guest, 1 reclaimed by the host at teardown, 0 open \
             (their sockets are closed)\n"
        ),
        "{stderr}"
    );
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json_path);
    let call = &json["calls"][0];
    assert_eq!(
        call["report"]["scope"],
        serde_json::json!({"kind": "call", "call": 1, "name": run(peer), "trapped": false})
    );
    assert_eq!(call["report"]["leaks"][0]["connection"]["released"], "guest-dropped");
    assert_eq!(call["report"]["leaks"][0]["connection"]["socket_open"], true);
    assert_eq!(call["report"]["leaks"][0]["streams"][0]["kind"], "reader");
    assert_eq!(call["report"]["leaks"][0]["streams"][0]["site"][0], "fixture_seed_bug::open_connection");
    assert_eq!(json["teardown"]["sockets_still_open"], serde_json::json!([]));
    assert_eq!(json["summary"], serde_json::json!({"lent": 3, "released": 3, "open": 0, "reclaimed": 1}));
}

/// Leaks are reported but do not fail the run without --deny-leaks; a clean component passes
/// with it.
#[test]
fn exit_status_follows_deny_leaks() {
    let peer = echo_peer::spawn_on_thread();
    let forgetful = audit(env!("LEASHED_FIXTURE_FORGET_ALL"), peer, &[], &[&run(peer)]);
    assert_eq!(forgetful.status.code(), Some(0));
    assert!(text(&forgetful.stderr).contains("SUMMARY: leashed: 3 handle(s) of 1 connection(s)"));
    let denied = audit(env!("LEASHED_FIXTURE_FORGET_ALL"), peer, &["--deny-leaks"], &[&run(peer)]);
    assert_eq!(denied.status.code(), Some(3));
    let clean = audit(env!("LEASHED_FIXTURE_WELL_BEHAVED"), peer, &["--deny-leaks"], &[&run(peer)]);
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean.stderr));
    assert!(text(&clean.stderr).ends_with("audit: 3 handles lent, 3 released, 0 open\n"));
}

/// Strict policy: the seed bug traps (exit 1) with the message naming the live reader.
#[test]
fn strict_trap_exits_1_naming_the_reader() {
    let peer = echo_peer::spawn_on_thread();
    let out = audit(env!("LEASHED_FIXTURE_SEED_BUG"), peer, &[], &[&run(peer), "poke()"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("trapped: the strict drop rule (resource has children: connection #1 (created at fixture_seed_bug::open_connection) was dropped at fixture_seed_bug::buggy_force_close while its reader #2"), "{stdout}");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("skipped `poke()`: the instance trapped"), "{stderr}");
}

/// After a trap, stdout says what kind of trap it was, and the final line says what the host
/// reclaimed after it and that those sockets are closed, instead of reading like a leak the host
/// kept.
#[test]
fn after_a_trap_the_final_line_says_what_was_reclaimed() {
    let peer = echo_peer::spawn_on_thread();
    let out = audit(env!("LEASHED_FIXTURE_TRAP_MID_READ"), peer, &[], &[&run(peer)]);
    assert_eq!(out.status.code(), Some(1));
    // The trap's kind, told from the guest's stderr, which is still passed on.
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("trapped: a panic (at trap-mid-read/src/lib.rs:16:9: parser bug after reading 4 bytes)"),
        "{stdout}"
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("panicked at trap-mid-read/src/lib.rs:16:9:\nparser bug after reading 4 bytes"),
        "{stderr}"
    );
    assert!(
        stderr.ends_with(
            "audit: 2 handles lent, 0 released by the guest, 2 reclaimed after the trap, 0 open (their sockets are closed)\n"
        ),
        "{stderr}"
    );
}

/// Acceptance 6 (issue 8): a leak the guest gives back in a later call is reported when that
/// happens, naming the call that leaked it.
#[test]
fn a_leak_released_in_a_later_call_is_reported_then() {
    let peer = echo_peer::spawn_on_thread();
    let out = audit(env!("LEASHED_FIXTURE_HOLD_WRITER"), peer, &[], &[&run(peer), "poke()"]);
    let stderr = text(&out.stderr);
    let poke = stderr.split("no leaks in call #2 `poke()`").nth(1).expect("call #2's report");
    let line = poke.lines().find(|l| l.contains("Late release: writer #3")).unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.contains("leaked in call #1, dropped by the guest in call #2, "), "{line}");
    assert!(line.ends_with(" s later"), "{line}");
    assert!(poke.contains("Late release: connection #1, leaked in call #1"), "{stderr}");
}

/// Two calls on one instance: the first call's report names it; the second gives everything
/// back and is clean.
#[test]
fn per_call_reports_name_the_leaking_call() {
    let peer = echo_peer::spawn_on_thread();
    let out = audit(env!("LEASHED_FIXTURE_HOLD_WRITER"), peer, &["--deny-leaks"], &[&run(peer), "poke()"]);
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&format!("==leashed==ERROR: leaked lent handles in call #1 `{}`", run(peer))), "{stderr}");
    assert!(stderr.contains("Leaked writer #3 of connection #1 (still lent)"), "{stderr}");
    assert!(stderr.contains("==leashed== no leaks in call #2 `poke()`"), "{stderr}");
    assert_eq!(out.status.code(), Some(3), "call #1 leaked, even though call #2 gave it back");
}

/// Usage errors exit 2 with a reason.
#[test]
fn usage_errors_exit_2() {
    let peer = echo_peer::spawn_on_thread();
    for (extra, calls, expected) in [
        (&[][..], &["nope()"][..], "the component exports no function `nope`"),
        (&[][..], &["run(1, 2)"][..], "bad arguments in `run(1, 2)`"),
        (&["--allow", "10.0.0.0/99:1"][..], &["run()"][..], "not a CIDR network"),
    ] {
        let out = audit(env!("LEASHED_FIXTURE_WELL_BEHAVED"), peer, extra, calls);
        assert_eq!(out.status.code(), Some(2), "{calls:?}");
        assert!(text(&out.stderr).contains(expected), "{}", text(&out.stderr));
    }
}
