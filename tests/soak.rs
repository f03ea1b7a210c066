//! Soak (bounded in time): one long-lived guest instance runs 10,000 open/query/close cycles,
//! then 100,000 queries on one connection. At the start, middle and end of each run it prints
//! the guest's linear memory, the host's RSS, the process's open fds and the audit registry's
//! record counts, and asserts they stay flat: memory within 10 %, fds exact, the registry
//! bounded. (It found the registry keeping every `open` call's record for good: a call whose
//! handles came back in a later call was never forgotten.) `scripts/soak` runs it with the figures shown; the test command runs it too.

use leashed::GuestInstance;
use leashed::bindings::{ConnectOptions, TlsMode};
use leashed_tests::{Account, instance_for, url};

/// One look at the figures that must stay flat.
#[derive(Debug, Clone, Copy)]
struct Figures {
    guest_memory: usize,
    host_rss: usize,
    fds: usize,
    records: usize,
    calls: usize,
}

fn figures(instance: &GuestInstance) -> Figures {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let rss_kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS");
    Figures {
        guest_memory: instance.memory_bytes(),
        host_rss: rss_kib * 1024,
        fds: std::fs::read_dir("/proc/self/fd").unwrap().count(),
        records: instance.audit().record_count(),
        calls: instance.audit().call_count(),
    }
}

fn print(run: &str, at: &str, f: Figures) {
    println!(
        "soak {run:<26} {at:<6} guest memory {:.2} MiB, host RSS {:.1} MiB, fds {}, registry: {} handles, {} calls",
        f.guest_memory as f64 / 1048576.0,
        f.host_rss as f64 / 1048576.0,
        f.fds,
        f.records,
        f.calls
    );
}

/// Flat: memory within 10 % of the start, fds exact, the registry bounded by what it keeps of
/// clean connections and calls.
fn assert_flat(run: &str, start: Figures, later: Figures) {
    let within = |a: usize, b: usize, slack: usize| b <= a + slack;
    assert!(
        within(start.guest_memory, later.guest_memory, start.guest_memory / 10),
        "{run}: guest memory grew: {start:?} → {later:?}"
    );
    assert!(within(start.host_rss, later.host_rss, start.host_rss / 10), "{run}: host RSS grew: {start:?} → {later:?}");
    assert_eq!(start.fds, later.fds, "{run}: fds: {start:?} → {later:?}");
    let bound = leashed::audit::KEPT_CLEAN_CONNECTIONS * 3 + 16;
    assert!(later.records <= bound, "{run}: {} handle records (bound {bound})", later.records);
    // A call whose handles all came back in later calls is forgotten too; calls are kept only
    // while one of their events is (at most KEPT_EVENTS of those).
    let bound = leashed::audit::KEPT_CLEAN_CALLS + leashed::audit::KEPT_EVENTS + 16;
    assert!(later.calls <= bound, "{run}: {} call records (bound {bound})", later.calls);
}

/// `LEASHED_SOAK_SCALE=N` runs N times as long (the default, 1, is the figures).
fn scale() -> usize {
    std::env::var("LEASHED_SOAK_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1)
}

#[test]
fn one_instance_stays_flat_over_10k_connections_and_100k_queries() {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
        let url = url(Account::Native);
        let options = ConnectOptions { tls_mode: TlsMode::Disabled, ..url.connect_options() };
        let mut instance = instance_for(&url).await;
        let cycle = async |instance: &mut GuestInstance| {
            let conn = instance.open(&options).await.unwrap().expect("login");
            instance.query(conn, "SELECT 1").await.unwrap().expect("SELECT 1");
            instance.close(conn).await.unwrap().unwrap();
        };
        // Warm up: the registry fills to what it keeps (1,024 clean connections and calls, 10,000
        // events: three a cycle), the host's and the guest's allocators to their working sets.
        for _ in 0..4_000 {
            cycle(&mut instance).await;
        }
        let run = "open/query/close cycles";
        let start = figures(&instance);
        print(run, "start", start);
        for half in ["middle", "end"] {
            for _ in 0..5_000 * scale() {
                cycle(&mut instance).await;
            }
            let now = figures(&instance);
            print(run, half, now);
            assert_flat(run, start, now);
        }

        let run = "queries on one connection";
        let conn = instance.open(&options).await.unwrap().expect("login");
        for _ in 0..2_000 {
            instance.query(conn, "SELECT 1").await.unwrap().expect("SELECT 1");
        }
        let start = figures(&instance);
        print(run, "start", start);
        for half in ["middle", "end"] {
            for _ in 0..50_000 * scale() {
                instance.query(conn, "SELECT 1").await.unwrap().expect("SELECT 1");
            }
            let now = figures(&instance);
            print(run, half, now);
            assert_flat(run, start, now);
        }
        instance.close(conn).await.unwrap().unwrap();
        assert_eq!(instance.audit().summary().open, 0);
    });
}
