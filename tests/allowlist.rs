//! The guest reaches only what the policy allows, and a refused connect creates no socket.

use leashed::bindings::{ErrorCode, MysqlError, Value};
use leashed::mysql_url::MysqlUrl;
use leashed::net::resolve::{Lookup, Resolve, SystemResolver};
use leashed::{AllowEntry, Allowlist, Policy};
use leashed_tests::{Account, instance_for, options, runtime, url};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// The system resolver, counting the names it is asked about.
#[derive(Debug, Default)]
struct CountingResolver {
    lookups: AtomicUsize,
}

impl Resolve for CountingResolver {
    fn lookup<'a>(&'a self, name: &'a str, port: u16) -> Lookup<'a> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        SystemResolver.lookup(name, port)
    }
}

/// A name no entry names is denied, and never looked up (issue 17): with only
/// `127.0.0.1:PORT` allowed, `leak-the-secret-abc123.invalid:PORT` gets `denied`, not
/// `name-unresolvable`, while the listed address still reaches the server.
#[tokio::test]
async fn unlisted_name_is_denied_without_a_lookup() {
    let server = url(Account::Native);
    let by_address = MysqlUrl { host: "127.0.0.1".into(), ..server.clone() };
    let leak = MysqlUrl { host: "leak-the-secret-abc123.invalid".into(), ..server };
    let resolver = Arc::new(CountingResolver::default());
    let allow = Allowlist::new([AllowEntry::host_port("127.0.0.1", by_address.port)]).with_resolver(resolver.clone());
    let mut instance = runtime().instantiate(Policy::allowing(allow)).await.unwrap();

    let error = instance.open(&options(&leak)).await.unwrap().expect_err("denied");
    assert_eq!(error, MysqlError::Io(ErrorCode::Denied));
    assert_eq!(resolver.lookups.load(Ordering::SeqCst), 0, "the host looked the name up");

    let conn = instance.open(&options(&by_address)).await.unwrap().expect("login by the listed address");
    instance.close(conn).await.unwrap().unwrap();
    assert_eq!(resolver.lookups.load(Ordering::SeqCst), 0);
}
