//! Helpers for the session-reuse tests: instances that park in a shared lot, a session's id
//! after a request, one value of a query, and the server's global counters (which tell how
//! many resets and prepares a run of requests cost).

use crate::{Account, options, policy_for, runtime, url};
use leashed::bindings::{ConnectOptions, TlsMode, Value};
use leashed::net::parking::{ParkingLot, SessionReuse};
use leashed::{GuestInstance, MysqlHandle, Policy};
use std::sync::Arc;

/// Runs a future on a runtime of its own (the tests are synchronous).
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(future)
}

/// One value of a one-row query.
pub async fn scalar(instance: &mut GuestInstance, conn: MysqlHandle, sql: &str) -> Value {
    let sets = instance.query(conn, sql).await.unwrap().unwrap_or_else(|e| panic!("{sql}: {:?}", e.error));
    sets[0].rows[0][0].clone()
}

/// The options of `url` with TLS off.
pub fn plain(url: &leashed::mysql_url::MysqlUrl) -> ConnectOptions {
    ConnectOptions { tls_mode: TlsMode::Disabled, ..options(url) }
}

/// A policy whose instances park in `lot` under `scope` (one scope per component).
pub fn reusing(lot: &Arc<ParkingLot>, scope: &str) -> Policy {
    Policy { reuse: Some(SessionReuse { lot: lot.clone(), scope: scope.into() }), ..policy_for(&url(Account::Native)) }
}

/// Opens `options` in a fresh instance of `policy` and returns the session's connection id,
/// after running `sql` (if any); the connection is closed (parked, when clean) and the
/// instance dropped.
pub async fn session_id(policy: &Policy, options: &ConnectOptions, sql: &[&str]) -> u32 {
    let mut instance = runtime().instantiate(policy.clone()).await.unwrap();
    let conn = instance.open(options).await.unwrap().expect("login");
    let id = instance.connection_id(conn).await.unwrap();
    for statement in sql {
        instance.query(conn, statement).await.unwrap().unwrap_or_else(|e| panic!("{statement}: {:?}", e.error));
    }
    instance.close(conn).await.unwrap().unwrap();
    assert_eq!(instance.audit().summary().open, 0);
    id
}

/// A global status counter of the server (e.g. `Connections`, `Com_change_db`), read over a
/// connection of its own (which may count too).
pub async fn global_status(name: &str) -> u64 {
    let url = url(Account::Native);
    let mut instance = runtime().instantiate(policy_for(&url)).await.unwrap();
    let conn = instance.open(&plain(&url)).await.unwrap().expect("login");
    let sets = instance.query(conn, &format!("SHOW GLOBAL STATUS LIKE '{name}'")).await.unwrap().unwrap();
    instance.close(conn).await.unwrap().unwrap();
    match &sets[0].rows[0][1] {
        Value::Text(n) => n.parse().unwrap(),
        other => panic!("{name} is {other:?}"),
    }
}
