//! The guest reaches only what the policy allows, and a refused connect creates no socket.

use leashed::Policy;
use leashed::bindings::{ErrorCode, MysqlError, Value};
use leashed::mysql_url::MysqlUrl;
use leashed_tests::{Account, instance_for, options, runtime, url};

/// An empty allowlist allows nothing.
#[tokio::test]
async fn empty_allowlist_denies_everything() {
    let server = url(Account::Native);
    let mut instance = runtime().instantiate(Policy::default()).await.unwrap();
    let error = instance.open(&options(&server)).await.unwrap().expect_err("denied");
    assert_eq!(error, MysqlError::Io(ErrorCode::Denied));
}

/// A name that resolves to the allowed address is allowed: `localhost` reaches the server
/// when the allowlist names `localhost`.
#[tokio::test]
async fn allowed_name_reaches_the_server() {
    let server = url(Account::Native);
    let by_name = MysqlUrl { host: "localhost".into(), ..server };
    // localhost may also resolve to ::1, where the server does not listen; the guest's connect
    // tries each vetted address in turn.
    let mut instance = instance_for(&by_name).await;
    let conn = instance.open(&options(&by_name)).await.unwrap().expect("login via localhost");
    let sets = instance.query(conn, "SELECT 7").await.unwrap().unwrap();
    assert_eq!(sets[0].rows[0][0], Value::Int(7));
    instance.close(conn).await.unwrap().unwrap();
}
