//! The exact audit report for every fixture under every close policy: each fixture runs
//! `run(host, port)` and then `poke()` (unless `run` trapped) on one instance, against the echo
//! peer; the snapshot holds each call's result and report, the whole-store report, and how each
//! handle ended at teardown. Teardown must leave no socket open (checked with /proc/self/fd).
//!
//! Snapshots live in `tests/snapshots/`. Ports, fds, socket inodes and ages vary between runs and
//! are masked; everything else must match exactly. After an intended change to the reports,
//! review and accept the new ones with `INSTA_UPDATE=always cargo test --release -p
//! leashed-tests --test exact_reports` and `git diff tests/snapshots`.

use leashed::{AllowEntry, Allowlist, AuditedComponent, ClosePolicy, ComponentSource, Policy};
use leashed_tests::echo_peer;
use std::fmt::Write;
use std::time::Duration;

/// What varies from run to run, masked in the snapshots.
const MASKS: [(&str, &str); 7] = [
    (r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]"),
    (r#""127\.0\.0\.1", \d+"#, r#""127.0.0.1", [PORT]"#),
    (r"fd \d+", "fd [FD]"),
    (r"socket:\[\d+\]", "socket:[INODE]"),
    (r"age \d+ ms", "age [N] ms"),
    (r"\d+ ms ago", "[N] ms ago"),
    (r"\d+\.\d s later", "[N] s later"),
];

/// Runs the fixture's calls under `close` and renders everything the audit said.
async fn audit_transcript(fixture: &str, close: ClosePolicy) -> String {
    let peer = echo_peer::spawn().await;
    let allow = Allowlist::new([AllowEntry::host_port("127.0.0.1", peer.port())]);
    let policy = Policy { close, max_connections: 5, ..Policy::allowing(allow) };
    let component = AuditedComponent::new(&ComponentSource::File(fixture.into())).expect("fixture compiles");
    let mut instance = component.instantiate(policy).await.expect("instantiate");
    let mut out = String::new();
    for invocation in [format!("run(\"127.0.0.1\", {})", peer.port()), "poke()".to_string()] {
        let outcome = instance.invoke(&invocation).await.expect("the call can be made");
        let _ = match &outcome.result {
            Ok(values) => writeln!(out, "{invocation} -> {}", values.join(", ")),
            Err(trap) => writeln!(out, "{invocation} -> trap: {}", trap.root_cause()),
        };
        out.push_str(&outcome.report.to_text());
        out.push('\n');
        if outcome.result.is_err() {
            break; // a trapped instance takes no more calls
        }
        // Let the echo peer (on this test's runtime) answer what the call wrote, so what a later
        // read gets does not depend on scheduling.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let teardown = instance.teardown();
    out.push_str(&teardown.report.to_text());
    assert!(teardown.still_open.is_empty(), "sockets open after teardown: {:?}", teardown.still_open);
    out.push_str("\nat teardown:\n");
    for record in teardown.audit.records() {
        let released = record.released.expect("teardown releases everything");
        let _ = writeln!(out, "  {} {}: {released}", record.kind, record.id);
    }
    out
}

async fn check(snapshot: &str, fixture: &str, close: ClosePolicy) {
    let transcript = audit_transcript(fixture, close).await;
    let mut settings = insta::Settings::clone_current();
    for (pattern, mask) in MASKS {
        settings.add_filter(pattern, mask);
    }
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| insta::assert_snapshot!(snapshot, transcript));
}

macro_rules! exact_reports {
    ($($test:ident: $fixture:literal under $policy:ident;)*) => {$(
        #[tokio::test]
        async fn $test() {
            check(stringify!($test), env!($fixture), ClosePolicy::$policy).await;
        }
    )*};
}

exact_reports! {
    seed_bug_strict: "LEASHED_FIXTURE_SEED_BUG" under Strict;
    seed_bug_deferred: "LEASHED_FIXTURE_SEED_BUG" under Deferred;
    seed_bug_reclaim: "LEASHED_FIXTURE_SEED_BUG" under Reclaim;
    forget_all_strict: "LEASHED_FIXTURE_FORGET_ALL" under Strict;
    forget_all_deferred: "LEASHED_FIXTURE_FORGET_ALL" under Deferred;
    forget_all_reclaim: "LEASHED_FIXTURE_FORGET_ALL" under Reclaim;
    hold_writer_strict: "LEASHED_FIXTURE_HOLD_WRITER" under Strict;
    hold_writer_deferred: "LEASHED_FIXTURE_HOLD_WRITER" under Deferred;
    hold_writer_reclaim: "LEASHED_FIXTURE_HOLD_WRITER" under Reclaim;
    trap_mid_read_strict: "LEASHED_FIXTURE_TRAP_MID_READ" under Strict;
    trap_mid_read_deferred: "LEASHED_FIXTURE_TRAP_MID_READ" under Deferred;
    trap_mid_read_reclaim: "LEASHED_FIXTURE_TRAP_MID_READ" under Reclaim;
    connect_loop_strict: "LEASHED_FIXTURE_CONNECT_LOOP" under Strict;
    connect_loop_deferred: "LEASHED_FIXTURE_CONNECT_LOOP" under Deferred;
    connect_loop_reclaim: "LEASHED_FIXTURE_CONNECT_LOOP" under Reclaim;
    well_behaved_strict: "LEASHED_FIXTURE_WELL_BEHAVED" under Strict;
    well_behaved_deferred: "LEASHED_FIXTURE_WELL_BEHAVED" under Deferred;
    well_behaved_reclaim: "LEASHED_FIXTURE_WELL_BEHAVED" under Reclaim;
}
