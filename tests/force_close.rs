//! Every path that abandons a connection releases the writer, the reader and the connection,
//! and the OS closes the socket: close, dropping the handle, an I/O error mid-result, failed
//! auth, connection refused.

use leashed::bindings::{ConnectOptions, ErrorCode, MysqlError, TlsMode};
use leashed::mysql_url::MysqlUrl;
use leashed_tests::fault_proxy::FaultProxy;
use leashed_tests::{
    Account, assert_all_released_and_closed, assert_guest_released_connection, connections, instance_for, options, url,
};
use std::net::SocketAddr;

/// `close` sends COM_QUIT and releases all three handles; the handle then reports `closed`.
#[tokio::test]
async fn close_releases_both_streams_and_the_connection() {
    let url = url(Account::Native);
    let mut instance = instance_for(&url).await;
    let conn = instance.open(&options(&url)).await.unwrap().unwrap();
    let [id] = connections(&instance)[..] else { panic!("one connection expected") };
    assert_eq!(instance.audit().summary().open, 3, "connection, reader and writer are lent while open");
    for h in instance.audit().records() {
        assert!(
            leashed::os_fds::socket_is_open(h.fd.unwrap(), h.socket_inode.unwrap()),
            "{} {} not open",
            h.kind,
            h.id
        );
    }

    instance.close(conn).await.unwrap().expect("close");
    assert_guest_released_connection(&instance, id);
}

/// Dropping the guest's handle without `close` releases everything too.
#[tokio::test]
async fn dropping_the_handle_releases_everything() {
    let url = url(Account::Native);
    let mut instance = instance_for(&url).await;
    let conn = instance.open(&options(&url)).await.unwrap().unwrap();
    let [id] = connections(&instance)[..] else { panic!("one connection expected") };
    instance.drop_handle(conn).await.unwrap();
    assert_guest_released_connection(&instance, id);
}

/// A connection cut in the middle of a result set: the guest reports an I/O error,
/// force-closes, and every later call says `closed`.
#[tokio::test]
async fn io_error_mid_result_force_closes() {
    let server = url(Account::Native);
    let upstream: SocketAddr = format!("{}:{}", server.host, server.port).parse().unwrap();
    let proxy = FaultProxy::cut_mid_response(upstream, 5_000).await;
    let via_proxy = MysqlUrl { host: proxy.addr.ip().to_string(), port: proxy.addr.port(), ..server };
    let mut instance = instance_for(&via_proxy).await;
    // The proxy watches for COM_QUERY in plaintext, so this connection does without TLS.
    let plain = ConnectOptions { tls_mode: TlsMode::Disabled, ..options(&via_proxy) };
    let conn = instance.open(&plain).await.unwrap().expect("login through the proxy");
    let [id] = connections(&instance)[..] else { panic!("one connection expected") };

    let failure = instance
        .query(conn, "SELECT seq, REPEAT('x', 200) FROM seq_1_to_10000")
        .await
        .unwrap()
        .expect_err("the proxy cuts the result");
    assert_eq!(failure.error, MysqlError::Io(ErrorCode::ConnectionReset));
    assert!(failure.completed.is_empty());
    assert_guest_released_connection(&instance, id);

    let after = instance.query(conn, "SELECT 1").await.unwrap().unwrap_err();
    assert_eq!(after.error, MysqlError::Closed);
    instance.drop_handle(conn).await.unwrap();
    assert_all_released_and_closed(&instance);
}

/// A wrong password: 1045 (28000), and the handles of the failed login are all released.
#[tokio::test]
async fn failed_auth_releases_everything() {
    let good = url(Account::Native);
    let bad = MysqlUrl { password: Some("wrong-password".into()), ..good };
    let mut instance = instance_for(&bad).await;
    let error = instance.open(&options(&bad)).await.unwrap().expect_err("wrong password");
    let MysqlError::Auth(e) = &error else { panic!("expected an auth error: {error:?}") };
    assert_eq!((e.code, e.sql_state.as_str()), (1045, "28000"));
    assert!(e.message.starts_with("Access denied for user 'leashed_native'"), "{}", e.message);
    let [id] = connections(&instance)[..] else { panic!("one connection expected") };
    assert_guest_released_connection(&instance, id);
}

/// An unknown database fails login with the server's error, released the same way.
#[tokio::test]
async fn failed_login_to_unknown_database_releases_everything() {
    let good = url(Account::Native);
    let bad = MysqlUrl { database: Some("no_such_db".into()), ..good };
    let mut instance = instance_for(&bad).await;
    let error = instance.open(&options(&bad)).await.unwrap().expect_err("no such database");
    let (MysqlError::Auth(e) | MysqlError::Server(e)) = &error else { panic!("expected a server error: {error:?}") };
    assert_eq!(e.code, 1044, "{}", e.message);
    let [id] = connections(&instance)[..] else { panic!("one connection expected") };
    assert_guest_released_connection(&instance, id);
}
