//! Refused connects create no socket: checked against the OS's fd table, so the tests in this
//! binary run one at a time (a parallel test's sockets would blur the before/after diff).

use leashed::bindings::{ErrorCode, MysqlError};
use leashed::mysql_url::MysqlUrl;
use leashed::os_fds::open_socket_inodes;
use leashed::{Allowlist, Policy};
use leashed_tests::{Account, options, runtime, url};
use tokio::sync::Mutex;

/// Held by each test here, so no other test's sockets appear in the diff.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// Sockets open now that were not open `before`.
fn new_sockets(before: &[u64]) -> Vec<u64> {
    open_socket_inodes().expect("/proc/self/fd is readable").into_iter().filter(|i| !before.contains(i)).collect()
}

/// A server outside the allowlist gets `denied`, the audit records the denial, nothing is lent
/// and no socket is created.
#[tokio::test]
async fn address_outside_the_allowlist_is_denied_before_any_socket() {
    let server = url(Account::Native);
    // Allow some other port on the same host: the real server's port is then forbidden.
    let policy = Policy::allowing(Allowlist::new([MysqlUrl { port: server.port + 1, ..server.clone() }.allow_entry()]));
    let _serial = ONE_AT_A_TIME.lock().await;
    let mut instance = runtime().instantiate(policy).await.unwrap();
    let before = open_socket_inodes().expect("/proc/self/fd is readable");
    let error = instance.open(&options(&server)).await.unwrap().expect_err("denied");
    assert_eq!(error, MysqlError::Io(ErrorCode::Denied));
    assert_eq!(new_sockets(&before), Vec::<u64>::new(), "a socket was created for a denied connect");
    assert_eq!(instance.audit().summary().lent, 0);
    let denials = instance.audit().denials();
    assert_eq!(denials.len(), 1);
    assert_eq!((denials[0].host.as_str(), denials[0].port), (server.host.as_str(), server.port));
}

/// Connection refused: nothing is lent, and no socket is left behind.
#[tokio::test]
async fn connect_refused_leaves_nothing() {
    // A port nobody listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let target = MysqlUrl { host: "127.0.0.1".into(), port, ..url(Account::Native) };
    let policy = Policy::allowing(Allowlist::new([target.allow_entry()]));
    let _serial = ONE_AT_A_TIME.lock().await;
    let mut instance = runtime().instantiate(policy).await.unwrap();
    let before = open_socket_inodes().expect("/proc/self/fd is readable");
    let error = instance.open(&options(&target)).await.unwrap().expect_err("refused");
    assert_eq!(error, MysqlError::Io(ErrorCode::ConnectionRefused));
    assert_eq!(instance.audit().summary().lent, 0);
    assert_eq!(new_sockets(&before), Vec::<u64>::new(), "the failed connect left a socket open");
}
