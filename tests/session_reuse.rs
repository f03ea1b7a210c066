//! Session reuse: a MySQL session a guest closes clean is reset and parked by the host, and a
//! later instance that opens the same session takes it over without connecting, against the
//! private MariaDB.
//!
//! - Through `leashed serve` (on by default): sequential requests open one TCP connection (the
//!   server's `Connections` counter), and the per-request audit says `parked`.
//! - Through the library, two instances sharing a parking lot: another scope (another plugin) or
//!   other credentials never get the parked session; a parked session killed on the server is
//!   replaced without the caller noticing; no session state (a variable, a temporary table, an
//!   open transaction, `USE`) reaches the next user.
//!
//! The tests count server connections, so they take turns (`one_at_a_time`).

use leashed::bindings::{ConnectOptions, Value};
use leashed::net::parking::{ParkingLimits, ParkingLot};
use leashed_tests::items::items_table;
use leashed_tests::reuse::{block_on, global_status, plain, reusing, scalar, session_id};
use leashed_tests::served::{Reply, Served, sockets_to_port};
use leashed_tests::{Account, policy_for, runtime, url};
use std::sync::{Arc, Mutex, MutexGuard};

fn one_at_a_time() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `leashed serve` of the Rust example plugin against the private MariaDB, TLS off.
fn serve_items(extra: &[&str]) -> Served {
    items_table();
    let url = url(Account::Native);
    let database = format!("DATABASE_URL={}", std::env::var("LEASHED_TEST_NATIVE_URL").unwrap());
    let allow = format!("{}:{}", url.host, url.port);
    let mut args = vec!["--allow", &allow, "--env", &database, "--env", "MYSQL_TLS_MODE=disabled"];
    args.extend_from_slice(extra);
    Served::start(env!("LEASHED_PLUGIN_ITEMS_RUST"), &args)
}

/// Acceptance: N sequential requests through `leashed serve` open exactly one TCP connection to
/// MariaDB; each request's log line says it parked its session, and the process holds exactly
/// the one parked socket between requests.
#[test]
fn sequential_requests_through_serve_share_one_connection() {
    let _turn = one_at_a_time();
    let url = url(Account::Native);
    let mut served = serve_items(&[]);
    let (uses, prepares) =
        block_on(async { (global_status("Com_change_db").await, global_status("Com_stmt_prepare").await) });
    let before = block_on(global_status("Connections"));
    const REQUESTS: usize = 20;
    for _ in 0..REQUESTS {
        assert_eq!(
            served.get("/items/2"),
            Reply { status: 200, body: r#"{"id":2,"name":"item-2","price":"0.50"}"#.into() }
        );
        assert_eq!(sockets_to_port(served.pid(), url.port), 1, "exactly the parked socket:\n{}", served.log());
    }
    let after = block_on(global_status("Connections"));
    // `after` counts its own connection too.
    assert_eq!(after - before - 1, 1, "{REQUESTS} requests made {} connections", after - before - 1);
    // The shortcut (tests/reuse_shortcut.rs): only the first park, after a fresh login, is a
    // reset (its setup runs a USE); the lookup is prepared again after it, then cached.
    let resets = block_on(global_status("Com_change_db")) - uses;
    let prepared = block_on(global_status("Com_stmt_prepare")) - prepares;
    assert_eq!((resets, prepared), (1, 2), "resets and prepares over {REQUESTS} requests");
    let log = served.log();
    let access: Vec<&str> = log.lines().filter(|l| l.contains("leashed::access")).collect();
    assert!(access.iter().all(|l| l.contains("parked=1") && l.contains("leaked=0")), "{log}");
    let (code, log) = served.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.lines().last().unwrap_or_default().ends_with(", 0 open"), "{log}");
}

/// With `--no-session-reuse`, every request connects.
#[test]
fn without_reuse_every_request_connects() {
    let _turn = one_at_a_time();
    let url = url(Account::Native);
    let mut served = serve_items(&["--no-session-reuse"]);
    let before = block_on(global_status("Connections"));
    for _ in 0..5 {
        assert_eq!(served.get("/items/2").status, 200);
    }
    let after = block_on(global_status("Connections"));
    assert_eq!(after - before - 1, 5);
    assert_eq!(sockets_to_port(served.pid(), url.port), 0, "{}", served.log());
    assert!(served.log().lines().filter(|l| l.contains("leashed::access")).all(|l| l.contains("parked=0")));
}

/// The same session is taken over; another scope (another plugin), other credentials or
/// another database never get it.
#[test]
fn only_the_same_session_of_the_same_component_is_reused() {
    let _turn = one_at_a_time();
    block_on(async {
        let lot = Arc::new(ParkingLot::new(ParkingLimits::default()));
        let native = plain(&url(Account::Native));
        let first = session_id(&reusing(&lot, "plugin-a"), &native, &[]).await;
        assert_eq!(lot.len(), 1, "the clean session is parked");
        assert_ne!(session_id(&reusing(&lot, "plugin-b"), &native, &[]).await, first, "another component");
        let other_user = plain(&url(Account::Ed25519));
        assert_ne!(session_id(&reusing(&lot, "plugin-a"), &other_user, &[]).await, first, "other credentials");
        let wrong_password = ConnectOptions { password: Some("not-the-password".into()), ..native.clone() };
        let mut instance = runtime().instantiate(reusing(&lot, "plugin-a")).await.unwrap();
        let refused = instance.open(&wrong_password).await.unwrap();
        assert!(refused.is_err(), "a wrong password must log in, and fail, not take the parked session");
        let other_db = ConnectOptions { database: Some("information_schema".into()), ..native.clone() };
        assert_ne!(session_id(&reusing(&lot, "plugin-a"), &other_db, &[]).await, first, "another database");
        assert_eq!(session_id(&reusing(&lot, "plugin-a"), &native, &[]).await, first, "the same session");
    });
}

/// A parked session killed on the server is replaced: the host sees the server closed it and
/// never lends it, and the caller's open and query succeed on a new connection. A session
/// parked for more than a second is pinged before use, and still taken over when it answers.
#[test]
fn a_parked_session_killed_on_the_server_is_replaced() {
    let _turn = one_at_a_time();
    block_on(async {
        let lot = Arc::new(ParkingLot::new(ParkingLimits::default()));
        let native = plain(&url(Account::Native));
        let policy = reusing(&lot, "plugin-a");
        let parked = session_id(&policy, &native, &[]).await;
        let killer = session_id(&policy, &native, &[]).await;
        assert_eq!(killer, parked, "resumed");
        // Kill it from a connection of its own (not reused).
        let mut instance = runtime().instantiate(policy_for(&url(Account::Native))).await.unwrap();
        let conn = instance.open(&native).await.unwrap().unwrap();
        instance.query(conn, &format!("KILL {parked}")).await.unwrap().unwrap();
        instance.close(conn).await.unwrap().unwrap();

        let mut instance = runtime().instantiate(policy.clone()).await.unwrap();
        let conn = instance.open(&native).await.unwrap().expect("open falls back to a fresh login");
        let id = instance.connection_id(conn).await.unwrap();
        assert_ne!(id, parked);
        assert_eq!(scalar(&mut instance, conn, "SELECT 1 + 1").await, Value::Int(2));
        instance.close(conn).await.unwrap().unwrap();
        let summary = instance.audit().summary();
        assert_eq!((summary.open, summary.lent, summary.released), (0, 3, 3), "{summary}");
        let resumed = instance.audit().records().into_iter().filter(|r| r.resumed_from.is_some()).count();
        assert_eq!(resumed, 0, "the dead parked socket is never lent");
        assert_eq!(lot.len(), 1, "only the new session is parked; the dead one was closed");

        // Parked for longer than the guest trusts without a ping: pinged, answers, taken over.
        std::thread::sleep(std::time::Duration::from_millis(1_100));
        assert_eq!(session_id(&policy, &native, &[]).await, id, "a quiet old session is resumed after a ping");
    });
}

/// Nothing of one user's session reaches the next: user variables, temporary tables, an open
/// transaction (never parked: rolled back by the close), the database chosen with USE, and the
/// character set stay as a fresh login has them.
#[test]
fn session_state_never_leaks_into_the_next_request() {
    let _turn = one_at_a_time();
    block_on(async {
        let lot = Arc::new(ParkingLot::new(ParkingLimits::default()));
        let native = plain(&url(Account::Native));
        let policy = reusing(&lot, "plugin-a");
        let fresh_charset = {
            let mut instance = runtime().instantiate(policy_for(&url(Account::Native))).await.unwrap();
            let conn = instance.open(&native).await.unwrap().unwrap();
            let charset =
                scalar(&mut instance, conn, "SELECT CONCAT(@@character_set_client, '/', @@collation_connection)").await;
            instance.close(conn).await.unwrap().unwrap();
            charset
        };
        let first = session_id(
            &policy,
            &native,
            &[
                "SET @leaked = 42",
                "CREATE TEMPORARY TABLE leaked_tmp (x INT)",
                "CREATE TABLE IF NOT EXISTS reuse_tx (x INT)",
                "DELETE FROM reuse_tx",
                "USE information_schema",
                "SET NAMES latin1",
            ],
        )
        .await;
        let mut instance = runtime().instantiate(policy.clone()).await.unwrap();
        let conn = instance.open(&native).await.unwrap().unwrap();
        assert_eq!(instance.connection_id(conn).await.unwrap(), first, "the session was reused");
        assert_eq!(scalar(&mut instance, conn, "SELECT @leaked").await, Value::Null);
        assert!(
            instance.query(conn, "SELECT * FROM leaked_tmp").await.unwrap().is_err(),
            "the temporary table is gone"
        );
        assert_eq!(scalar(&mut instance, conn, "SELECT DATABASE()").await, Value::Text("leashed_test".into()));
        assert_eq!(
            scalar(&mut instance, conn, "SELECT CONCAT(@@character_set_client, '/', @@collation_connection)").await,
            fresh_charset
        );
        // An open transaction is never parked: the close rolls it back, on a connection that ends.
        instance.query(conn, "START TRANSACTION").await.unwrap().unwrap();
        instance.query(conn, "INSERT INTO reuse_tx VALUES (1)").await.unwrap().unwrap();
        instance.close(conn).await.unwrap().unwrap();
        assert_eq!(lot.len(), 0, "a session in a transaction is not parked");
        let mut instance = runtime().instantiate(policy.clone()).await.unwrap();
        let conn = instance.open(&native).await.unwrap().unwrap();
        assert_ne!(instance.connection_id(conn).await.unwrap(), first);
        assert_eq!(scalar(&mut instance, conn, "SELECT COUNT(*) FROM reuse_tx").await, Value::Int(0));
        instance.close(conn).await.unwrap().unwrap();
    });
}
