//! The reuse shortcut: a parked session the server's session tracker vouches for is handed to
//! the next request without COM_RESET_CONNECTION and the setup, and with its prepared
//! statements still prepared; anything the tracker does not see still gets the reset, and a
//! server that cannot track gets it every time. Against the private MariaDB.
//!
//! The server's global counters tell what a run of requests cost: `Com_change_db` counts the
//! `USE` every reset's setup runs, `Com_stmt_prepare` the statements prepared. The tests read
//! them, so they take turns (`one_at_a_time`).

use leashed::bindings::{ConnectOptions, Value};
use leashed::net::parking::{ParkingLimits, ParkingLot, SessionReuse};
use leashed::{Allowlist, Policy};
use leashed_tests::items::items_table;
use leashed_tests::reuse::{block_on, global_status, plain, reusing, scalar, session_id};
use leashed_tests::untracked_proxy::UntrackedProxy;
use leashed_tests::{Account, runtime, url};
use std::net::ToSocketAddrs;
use std::sync::{Arc, Mutex, MutexGuard};

fn one_at_a_time() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One request of an items plugin: a prepared lookup of item 2, its statement closed, the
/// connection closed. Returns the session's id and the item's name.
async fn lookup(policy: &Policy, options: &ConnectOptions) -> (u32, Value) {
    let mut instance = runtime().instantiate(policy.clone()).await.unwrap();
    let conn = instance.open(options).await.unwrap().expect("login");
    let id = instance.connection_id(conn).await.unwrap();
    let stmt = instance.prepare(conn, "SELECT name FROM items WHERE id = ?").await.unwrap().unwrap();
    let sets = instance.execute(stmt, &[Value::Int(2)]).await.unwrap().unwrap();
    instance.close_statement(stmt).await.unwrap().unwrap();
    instance.close(conn).await.unwrap().unwrap();
    assert_eq!(instance.audit().summary().open, 0);
    (id, sets[0].rows[0][0].clone())
}

/// After the first park (a fresh login is always reset, which switches tracking on), requests
/// that change nothing cost no reset at all, and the statement they prepare is prepared once.
#[test]
fn an_untouched_session_skips_the_reset_and_keeps_its_statements() {
    let _turn = one_at_a_time();
    items_table();
    block_on(async {
        let lot = Arc::new(ParkingLot::new(ParkingLimits::default()));
        let native = plain(&url(Account::Native));
        let policy = reusing(&lot, "plugin-a");
        let (first, _) = lookup(&policy, &native).await;
        let (uses, prepares) = (global_status("Com_change_db").await, global_status("Com_stmt_prepare").await);
        for _ in 0..5 {
            assert_eq!(lookup(&policy, &native).await, (first, Value::Text("item-2".into())));
        }
        let resets = global_status("Com_change_db").await - uses;
        let prepared = global_status("Com_stmt_prepare").await - prepares;
        assert_eq!(resets, 0, "5 untouched requests were reset {resets} times");
        // The first park's reset dropped the statement; the next request prepares it again
        // and every later one takes it from the cache that travels with the parked session.
        assert_eq!(prepared, 1, "5 requests prepared {prepared} statements");
        assert_eq!(lot.len(), 1);
    });
}

/// What a request does to its session.
enum Step {
    Query(&'static str),
    /// A query whose error is expected.
    Failing(&'static str),
    /// A query read as a row stream.
    Stream(&'static str),
    /// `connection.reset()`, which also switches the tracker off.
    Reset,
}

/// What the next request must see.
enum Expect {
    Value(&'static str, Value),
    Fails(&'static str),
}

/// A tracked session, touched by one request in a way the tracker misses (or reports), is
/// reset before the next request takes it over: nothing of it is left.
#[test]
fn whatever_the_tracker_misses_still_gets_a_reset() {
    let _turn = one_at_a_time();
    use Expect::{Fails, Value as Is};
    use Step::{Failing, Query, Reset, Stream};
    let text = |s: &str| Value::Text(s.into());
    let cases: Vec<(Vec<Step>, Expect)> = vec![
        (vec![Query("SET @leaked = 42")], Is("SELECT @leaked", Value::Null)),
        (vec![Query("SELECT @assigned := 42")], Is("SELECT @assigned", Value::Null)),
        (vec![Query("SELECT 42 INTO @selected_into")], Is("SELECT @selected_into", Value::Null)),
        (
            vec![Query("SELECT NEXTVAL(reuse_shortcut_seq)")],
            Is("SELECT PREVIOUS VALUE FOR reuse_shortcut_seq", Value::Null),
        ),
        (vec![Query("CREATE TEMPORARY TABLE leaked_tmp (x INT)")], Fails("SELECT * FROM leaked_tmp")),
        (vec![Query("USE information_schema")], Is("SELECT DATABASE()", text("leashed_test"))),
        (vec![Query("SET NAMES latin1")], Is("SELECT @@character_set_client", text("utf8mb4"))),
        (vec![Query("DO GET_LOCK('leashed_reuse', 0)")], Is("SELECT IS_USED_LOCK('leashed_reuse')", Value::Null)),
        (vec![Query("LOCK TABLES reuse_shortcut READ")], Is("SELECT COUNT(*) FROM items WHERE id = 2", Value::Int(1))),
        (vec![Query("HANDLER reuse_shortcut OPEN")], Fails("HANDLER reuse_shortcut READ FIRST")),
        (vec![Query("DO LAST_INSERT_ID(7)")], Is("SELECT CAST(LAST_INSERT_ID() AS CHAR)", text("0"))),
        (
            vec![Query("INSERT INTO reuse_shortcut () VALUES ()")],
            Is("SELECT CAST(LAST_INSERT_ID() AS CHAR)", text("0")),
        ),
        (vec![Query("DO 1/0")], Is("SELECT CAST(@@warning_count AS CHAR)", text("0"))),
        (vec![Failing("SET @before_error = 1; SELECT no_such_column")], Is("SELECT @before_error", Value::Null)),
        (
            vec![Query("SET SESSION session_track_state_change = OFF"), Query("SET @untracked = 1")],
            Is("SELECT @untracked", Value::Null),
        ),
        (vec![Stream("START TRANSACTION")], Is("SELECT CAST(@@in_transaction AS CHAR)", text("0"))),
        (vec![Reset, Query("SET @after_reset = 1")], Is("SELECT @after_reset", Value::Null)),
    ];
    block_on(async {
        let native = plain(&url(Account::Native));
        session_id(
            &leashed_tests::policy_for(&url(Account::Native)),
            &native,
            &[
                "CREATE TABLE IF NOT EXISTS reuse_shortcut (id INT AUTO_INCREMENT PRIMARY KEY)",
                "CREATE SEQUENCE IF NOT EXISTS reuse_shortcut_seq",
            ],
        )
        .await;
        for (index, (steps, expect)) in cases.into_iter().enumerate() {
            let lot = Arc::new(ParkingLot::new(ParkingLimits::default()));
            let policy = reusing(&lot, "plugin-a");
            // Parked twice: the second time tracked and untouched, so the shortcut is live.
            let id = session_id(&policy, &native, &[]).await;
            assert_eq!(session_id(&policy, &native, &[]).await, id);

            let mut instance = runtime().instantiate(policy.clone()).await.unwrap();
            let conn = instance.open(&native).await.unwrap().unwrap();
            assert_eq!(instance.connection_id(conn).await.unwrap(), id, "case {index}: resumed");
            for step in &steps {
                match step {
                    Query(sql) => {
                        instance.query(conn, sql).await.unwrap().unwrap_or_else(|e| panic!("{sql}: {:?}", e.error));
                    }
                    Failing(sql) => assert!(instance.query(conn, sql).await.unwrap().is_err(), "{sql}"),
                    Stream(sql) => {
                        let stream = instance.query_stream(conn, sql).await.unwrap().unwrap();
                        instance.close_stream(stream).await.unwrap().unwrap();
                    }
                    Reset => instance.reset(conn).await.unwrap().unwrap(),
                }
            }
            instance.close(conn).await.unwrap().unwrap();
            assert_eq!(lot.len(), 1, "case {index}: parked");

            let mut instance = runtime().instantiate(policy.clone()).await.unwrap();
            let conn = instance.open(&native).await.unwrap().unwrap();
            assert_eq!(instance.connection_id(conn).await.unwrap(), id, "case {index}: the same session");
            match expect {
                Is(sql, value) => assert_eq!(scalar(&mut instance, conn, sql).await, value, "case {index}: {sql}"),
                Fails(sql) => assert!(instance.query(conn, sql).await.unwrap().is_err(), "case {index}: {sql}"),
            }
            instance.close(conn).await.unwrap().unwrap();
        }
    });
}

/// Behind a server that does not offer CLIENT_SESSION_TRACK (here MariaDB behind a proxy that
/// hides it), every park is a reset, and nothing leaks either.
#[test]
fn a_server_that_cannot_track_is_reset_every_time() {
    let _turn = one_at_a_time();
    items_table();
    block_on(async {
        let native = url(Account::Native);
        let server = (native.host.as_str(), native.port).to_socket_addrs().unwrap().next().unwrap();
        let proxy = UntrackedProxy::start(server).await;
        let options = ConnectOptions { host: "127.0.0.1".into(), port: proxy.addr.port(), ..plain(&native) };
        let lot = Arc::new(ParkingLot::new(ParkingLimits::default()));
        let policy = Policy {
            reuse: Some(SessionReuse { lot: lot.clone(), scope: "plugin-a".into() }),
            ..Policy::allowing(Allowlist::new([leashed::AllowEntry::host_port("127.0.0.1", proxy.addr.port())]))
        };
        let (first, _) = lookup(&policy, &options).await;
        let uses = global_status("Com_change_db").await;
        for _ in 0..3 {
            assert_eq!(lookup(&policy, &options).await, (first, Value::Text("item-2".into())));
        }
        assert_eq!(global_status("Com_change_db").await - uses, 3, "one reset per request");
        assert_eq!(session_id(&policy, &options, &["SET @leaked = 1"]).await, first);
        let mut instance = runtime().instantiate(policy.clone()).await.unwrap();
        let conn = instance.open(&options).await.unwrap().unwrap();
        assert_eq!(instance.connection_id(conn).await.unwrap(), first);
        assert_eq!(scalar(&mut instance, conn, "SELECT @leaked").await, Value::Null);
        instance.close(conn).await.unwrap().unwrap();
    });
}
