//! Concurrency: 64 guest instances in one process, each with its own connections, querying at
//! once on a multi-threaded runtime. Every instance's audit holds its own handles and nobody
//! else's; a host-wide cap on open connections (`Policy::host_connections`) refuses the
//! connects past it with `limit-reached`, and frees its places as connections close.

use leashed::bindings::{ConnectOptions, ErrorCode, MysqlError, TlsMode, Value};
use leashed::net::budget::ConnectionBudget;
use leashed::{GuestInstance, Policy};
use leashed_tests::{Account, policy_for, runtime, url};
use std::collections::HashSet;
use std::sync::Arc;
use tokio::sync::Barrier;

const INSTANCES: usize = 64;

fn options() -> ConnectOptions {
    ConnectOptions { tls_mode: TlsMode::Disabled, ..url(Account::Native).connect_options() }
}

fn multi_threaded() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap()
}

/// 64 instances, two connections each, 20 queries on each connection, all at once.
#[test]
fn sixty_four_instances_audit_only_their_own_handles() {
    multi_threaded().block_on(async {
        let began = std::time::Instant::now();
        let start = Arc::new(Barrier::new(INSTANCES));
        let tasks: Vec<_> = (0..INSTANCES)
            .map(|i| {
                let start = start.clone();
                tokio::spawn(async move {
                    let mut instance = runtime().instantiate(policy_for(&url(Account::Native))).await.unwrap();
                    start.wait().await;
                    let a = instance.open(&options()).await.unwrap().expect("login");
                    let b = instance.open(&options()).await.unwrap().expect("login");
                    for n in 0..20 {
                        let sql = format!("SELECT {i} * 1000 + {n}");
                        for conn in [a, b] {
                            let sets = instance.query(conn, &sql).await.unwrap().expect("query");
                            let expected = (i * 1000 + n) as i64;
                            assert!(matches!(sets[0].rows[0][0], Value::Int(v) if v == expected), "{:?}", sets[0].rows);
                        }
                    }
                    // Its own sockets, seen while they are open.
                    let inodes: HashSet<u64> =
                        instance.audit().records().iter().filter_map(|r| r.socket_inode).collect();
                    instance.close(a).await.unwrap().unwrap();
                    instance.close(b).await.unwrap().unwrap();
                    (instance, inodes)
                })
            })
            .collect();
        let mut seen = HashSet::new();
        for task in tasks {
            let (instance, inodes): (GuestInstance, HashSet<u64>) = task.await.expect("no instance panicked");
            let summary = instance.audit().summary();
            assert_eq!((summary.lent, summary.released, summary.open), (6, 6, 0), "{summary}");
            assert_eq!(instance.audit().records().len(), 6, "two connections, two streams each");
            assert_eq!(inodes.len(), 2, "two sockets of its own");
            assert!(seen.is_disjoint(&inodes), "a socket in two instances' audits");
            seen.extend(inodes);
        }
        println!(
            "concurrency: {INSTANCES} instances, {} connections, {} queries at once in {:.2} s; every audit: 6 handles lent, 6 released, its own 2 sockets",
            seen.len(),
            INSTANCES * 2 * 20,
            began.elapsed().as_secs_f64()
        );
    });
}

/// A host-wide cap of 10 connections: of 64 instances connecting at once while the others
/// hold theirs, exactly 10 get a connection and 54 get `limit-reached`; nothing crashes, and
/// once they close, the cap's places are free again.
#[test]
fn a_host_wide_cap_gives_limit_reached_past_it() {
    multi_threaded().block_on(async {
        let budget = ConnectionBudget::new(10);
        let policy = Policy { host_connections: Some(budget.clone()), ..policy_for(&url(Account::Native)) };
        let connected = Arc::new(Barrier::new(INSTANCES));
        let tasks: Vec<_> = (0..INSTANCES)
            .map(|_| {
                let (policy, connected) = (policy.clone(), connected.clone());
                tokio::spawn(async move {
                    let mut instance = runtime().instantiate(policy).await.unwrap();
                    let opened = instance.open(&options()).await.unwrap();
                    // Hold it until every instance has tried.
                    connected.wait().await;
                    let got = match opened {
                        Ok(conn) => {
                            instance.query(conn, "SELECT 1").await.unwrap().expect("query");
                            instance.close(conn).await.unwrap().unwrap();
                            true
                        }
                        Err(MysqlError::Io(ErrorCode::LimitReached)) => false,
                        Err(other) => panic!("expected limit-reached, got {other:?}"),
                    };
                    assert_eq!(instance.audit().summary().open, 0);
                    got
                })
            })
            .collect();
        let mut connections = 0;
        for task in tasks {
            connections += usize::from(task.await.expect("no instance panicked"));
        }
        assert_eq!(connections, 10, "exactly the cap connected");
        println!(
            "concurrency: host-wide cap of 10: {connections} of {INSTANCES} instances connected, {} got limit-reached",
            INSTANCES - connections
        );
        assert_eq!(budget.open(), 0, "every place came back");
        let mut instance = runtime().instantiate(policy).await.unwrap();
        let conn = instance.open(&options()).await.unwrap().expect("a place is free again");
        instance.close(conn).await.unwrap().unwrap();
    });
}
