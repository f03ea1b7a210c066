//! The leak audit on real fixture components (tests/fixtures, built by tests/build.rs) over real
//! TCP: the seed bug under each close policy with the OS's view of its socket at each step, the
//! JSON form, per-call scoping, limits, the embedders' `assert_clean`, and that no socket of any
//! of them survives the store. The exact text of every report is in `exact_reports.rs`.

use leashed::audit::report::LeakReport;
use leashed::{
    AllowEntry, Allowlist, AuditedComponent, AuditedInstance, ClosePolicy, ComponentSource, HandleKind, Policy, Release,
};
use leashed_tests::echo_peer;
use std::net::SocketAddr;

fn fixture(path: &str) -> AuditedComponent {
    AuditedComponent::new(&ComponentSource::File(path.into())).expect("fixture compiles")
}

async fn instance(path: &str, close: ClosePolicy, peer: SocketAddr) -> AuditedInstance {
    let allow = Allowlist::new([AllowEntry::host_port("127.0.0.1", peer.port())]);
    let policy = Policy { close, ..Policy::allowing(allow) };
    fixture(path).instantiate(policy).await.expect("instantiate")
}

fn run(peer: SocketAddr) -> String {
    format!("run(\"127.0.0.1\", {})", peer.port())
}

/// The teardown report closes every socket, verified against /proc/self/fd.
fn assert_teardown_closes_everything(instance: AuditedInstance) -> Vec<Release> {
    let teardown = instance.teardown();
    assert!(teardown.still_open.is_empty(), "sockets open after teardown: {:?}", teardown.still_open);
    let records = teardown.audit.records();
    for r in &records {
        assert!(!leashed::os_fds::socket_is_open(r.fd.unwrap(), r.socket_inode.unwrap()), "{} {} open", r.kind, r.id);
    }
    records.iter().map(|r| r.released.expect("released at teardown")).collect()
}

fn kinds(report: &LeakReport) -> Vec<(HandleKind, Vec<HandleKind>)> {
    report.leaks.iter().map(|l| (l.connection.kind, l.streams.iter().map(|s| s.kind).collect())).collect()
}

/// Seed bug, strict: dropping the connection traps, naming the live reader and where the
/// connection and the reader were created.
#[tokio::test]
async fn seed_bug_under_strict_traps_naming_the_live_reader() {
    let peer = echo_peer::spawn().await;
    let mut instance = instance(env!("LEASHED_FIXTURE_SEED_BUG"), ClosePolicy::Strict, peer).await;
    let outcome = instance.invoke(&run(peer)).await.unwrap();
    let trap = outcome.result.expect_err("strict traps");
    let message = trap.root_cause().to_string();
    assert!(
        message.starts_with("resource has children: connection #1 (created at fixture_seed_bug::open_connection)"),
        "{message}"
    );
    assert!(message.contains("reader #2 (created at fixture_seed_bug::open_connection) still lent"), "{message}");
    let text = outcome.report.to_text();
    assert!(text.contains("(trapped)"), "{text}");
    assert_eq!(kinds(&outcome.report), [(HandleKind::Connection, vec![HandleKind::Reader])]);
    let releases = assert_teardown_closes_everything(instance);
    // The writer was dropped before the trap; the connection and reader go with the store.
    assert_eq!(releases, [Release::AfterTrap, Release::AfterTrap, Release::GuestDropped]);
}

/// Seed bug, deferred (Python's semantics): the call succeeds, the report shows one leaked
/// connection with its reader, and the socket stays open until teardown closes it.
#[tokio::test]
async fn seed_bug_under_deferred_leaks_one_connection_with_its_reader() {
    let peer = echo_peer::spawn().await;
    let mut instance = instance(env!("LEASHED_FIXTURE_SEED_BUG"), ClosePolicy::Deferred, peer).await;
    let outcome = instance.invoke(&run(peer)).await.unwrap();
    assert!(outcome.result.is_ok(), "{:?}", outcome.result.err());
    let report = &outcome.report;
    assert_eq!(kinds(report), [(HandleKind::Connection, vec![HandleKind::Reader])]);
    let conn = &report.leaks[0].connection;
    assert_eq!(conn.released, Some(Release::GuestDropped));
    assert!(leashed::os_fds::socket_is_open(conn.fd.unwrap(), conn.socket_inode.unwrap()), "deferred keeps the fd");
    assert!(report.os_mismatches.is_empty(), "{:?}", report.os_mismatches);
    let text = report.to_text();
    assert!(text.contains("Direct leak: connection #1"), "{text}");
    assert!(text.contains("dropped by the guest, but its socket stays open for its streams"), "{text}");
    assert!(text.contains("Leaked reader #2 of connection #1 (still lent)"), "{text}");
    assert!(text.contains("#0 fixture_seed_bug::open_connection\n"), "creation site in: {text}");
    assert!(text.contains("#1 run\n"), "the export in the creation site: {text}");
    let json = serde_json::to_value(report.to_json()).unwrap();
    assert_eq!(json["leaked"], 1);
    assert_eq!(json["leaks"][0]["streams"][0]["kind"], "reader");
    assert_eq!(json["leaks"][0]["connection"]["socket_open"], true);
    let releases = assert_teardown_closes_everything(instance);
    assert_eq!(releases, [Release::GuestDropped, Release::StoreTeardown, Release::GuestDropped]);
}

/// Seed bug, reclaim: dropping the connection closes the fd at once (verified with the OS), the
/// kept reader's next read gets `closed`, and the late use is reported.
#[tokio::test]
async fn seed_bug_under_reclaim_closes_the_fd_and_the_reader_gets_closed() {
    let peer = echo_peer::spawn().await;
    let mut instance = instance(env!("LEASHED_FIXTURE_SEED_BUG"), ClosePolicy::Reclaim, peer).await;
    let outcome = instance.invoke(&run(peer)).await.unwrap();
    assert!(outcome.result.is_ok());
    let conn = &outcome.report.leaks[0].connection;
    assert!(conn.socket_reclaimed);
    assert!(!leashed::os_fds::socket_is_open(conn.fd.unwrap(), conn.socket_inode.unwrap()), "reclaim closes the fd");
    assert_eq!(kinds(&outcome.report), [(HandleKind::Connection, vec![HandleKind::Reader])]);

    let poke = instance.invoke("poke()").await.unwrap();
    assert_eq!(poke.result.unwrap(), [r#"err("read: ErrorCode::Closed")"#]);
    assert!(
        poke.report.to_text().contains("Late use: read on #2 after connection #1 was reclaimed"),
        "{}",
        poke.report.to_text()
    );
    let releases = assert_teardown_closes_everything(instance);
    assert_eq!(releases, [Release::GuestDropped, Release::PolicyReclaim, Release::GuestDropped]);
}

/// With several calls on one instance, the per-call report names the call that leaked, and a
/// later call that gives the handles back is clean.
#[tokio::test]
async fn per_call_report_names_the_call_that_leaked() {
    let peer = echo_peer::spawn().await;
    let mut instance = instance(env!("LEASHED_FIXTURE_HOLD_WRITER"), ClosePolicy::Strict, peer).await;
    let first = instance.invoke(&run(peer)).await.unwrap();
    assert_eq!(kinds(&first.report), [(HandleKind::Connection, vec![HandleKind::Writer])]);
    assert!(first.report.to_text().contains(&format!("in call #1 `{}`", run(peer))), "{}", first.report.to_text());
    let second = instance.invoke("poke()").await.unwrap();
    assert!(second.result.is_ok());
    assert!(second.report.is_clean(), "{}", second.report.to_text());
    assert!(instance.audit().store_report().is_clean(), "everything was given back by the end");
    assert_teardown_closes_everything(instance);
}

/// Forgetting everything: three handles leaked, reclaimed by the store's teardown.
#[tokio::test]
async fn forgotten_handles_are_reclaimed_at_teardown() {
    let peer = echo_peer::spawn().await;
    let mut instance = instance(env!("LEASHED_FIXTURE_FORGET_ALL"), ClosePolicy::Strict, peer).await;
    let outcome = instance.invoke(&run(peer)).await.unwrap();
    assert_eq!(kinds(&outcome.report), [(HandleKind::Connection, vec![HandleKind::Reader, HandleKind::Writer])]);
    assert_eq!(outcome.report.leaked_handles(), 3);
    let releases = assert_teardown_closes_everything(instance);
    assert_eq!(releases, [Release::StoreTeardown; 3]);
}

/// A trap in the middle of a read: the call's report says it trapped, and the handles are
/// released after the trap with the store.
#[tokio::test]
async fn trap_mid_read_releases_after_the_trap() {
    let peer = echo_peer::spawn().await;
    let mut instance = instance(env!("LEASHED_FIXTURE_TRAP_MID_READ"), ClosePolicy::Strict, peer).await;
    let outcome = instance.invoke(&run(peer)).await.unwrap();
    assert!(outcome.result.is_err());
    assert_eq!(kinds(&outcome.report), [(HandleKind::Connection, vec![HandleKind::Reader])]);
    assert_eq!(outcome.report.leaks[0].streams[0].bytes_read, 4, "the read before the trap is in the history");
    let releases = assert_teardown_closes_everything(instance);
    assert_eq!(releases, [Release::AfterTrap, Release::AfterTrap]);
}

/// Past the connection limit the guest gets `limit-reached`, never a trap; the audit records it.
#[tokio::test]
async fn connections_past_the_limit_get_limit_reached() {
    let peer = echo_peer::spawn().await;
    let allow = Allowlist::new([AllowEntry::host_port("127.0.0.1", peer.port())]);
    let policy = Policy { max_connections: 5, ..Policy::allowing(allow) };
    let mut instance = fixture(env!("LEASHED_FIXTURE_CONNECT_LOOP")).instantiate(policy).await.unwrap();
    let outcome = instance.invoke(&run(peer)).await.unwrap();
    assert_eq!(outcome.result.unwrap(), [r#"ok("opened 5, then limit-reached")"#]);
    assert!(outcome.report.is_clean(), "{}", outcome.report.to_text());
    assert!(matches!(outcome.report.events[..], [leashed::audit::Event::LimitReached { limit: 5, .. }]));
    assert_teardown_closes_everything(instance);
}

/// The well-behaved fixture is clean, and `assert_clean` (the embedders' API) passes.
#[tokio::test]
async fn well_behaved_fixture_is_clean() {
    let peer = echo_peer::spawn().await;
    let mut instance = instance(env!("LEASHED_FIXTURE_WELL_BEHAVED"), ClosePolicy::Strict, peer).await;
    let outcome = instance.invoke(&run(peer)).await.unwrap();
    let result = outcome.result.as_ref().unwrap();
    assert!(result[0].starts_with(r#"ok("echoed hi!!"#), "{result:?}");
    outcome.report.assert_clean();
    assert_eq!(teardown_summary(instance), "audit: 3 handles lent, 3 released, 0 open");
}

fn teardown_summary(instance: AuditedInstance) -> String {
    let summary = instance.audit().summary().to_string();
    assert_teardown_closes_everything(instance);
    summary
}

/// `assert_clean` fails with the text report, so a plugin author sees what leaked and where.
#[tokio::test]
async fn assert_clean_fails_with_the_report() {
    let peer = echo_peer::spawn().await;
    let mut instance = instance(env!("LEASHED_FIXTURE_FORGET_ALL"), ClosePolicy::Strict, peer).await;
    let outcome = instance.invoke(&run(peer)).await.unwrap();
    let panic = std::panic::catch_unwind(|| outcome.report.assert_clean()).unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(message.starts_with("the guest leaked lent handles:"), "{message}");
    assert!(message.contains("SUMMARY: leashed: 3 handle(s) of 1 connection(s) not dropped by the guest"), "{message}");
}
