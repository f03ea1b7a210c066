//! Shared fixture for the end-to-end tests: the compiled guest (once per test binary), the
//! private MariaDB's URLs, OS-level socket checks, and a fault-injecting TCP proxy.
//!
//! The server comes from `scripts/mariadb` (scripts/test starts it and exports
//! `LEASHED_TEST_*_URL`); tests fail loudly, never skip, when it is missing.

pub mod composed;
pub mod echo_peer;
pub mod fault_proxy;
pub mod items;
pub mod jco;
pub mod lattice;
pub mod reuse;
pub mod scripted_server;
pub mod served;
pub mod stock;
pub mod untracked_proxy;

use leashed::bindings::ConnectOptions;
use leashed::mysql_url::MysqlUrl;
use leashed::{Allowlist, ComponentSource, GuestInstance, HandleId, HandleRecord, Policy, Runtime};
use std::sync::OnceLock;

/// The embedded guest, compiled once per test binary.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new(&ComponentSource::Embedded).expect("the embedded guest compiles"))
}

/// Which test account.
#[derive(Debug, Clone, Copy)]
pub enum Account {
    /// `leashed_native`, authenticated by mysql_native_password.
    Native,
    /// `leashed_ed25519`, authenticated by client_ed25519.
    Ed25519,
    /// `leashed_clear`, authenticated by PAM through mysql_clear_password.
    Clear,
}

/// The private MariaDB's URL for an account.
pub fn url(account: Account) -> MysqlUrl {
    let var = match account {
        Account::Native => "LEASHED_TEST_NATIVE_URL",
        Account::Ed25519 => "LEASHED_TEST_ED25519_URL",
        Account::Clear => "LEASHED_TEST_CLEAR_URL",
    };
    let text = std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the tests with scripts/test (it starts the private MariaDB), or `eval \"$(scripts/mariadb env)\"` after `scripts/mariadb start`")
    });
    MysqlUrl::parse(&text).expect("the test URL parses")
}

/// A policy that allows exactly `url`'s server.
pub fn policy_for(url: &MysqlUrl) -> Policy {
    Policy::allowing(Allowlist::new([url.allow_entry()]))
}

/// A fresh guest instance allowed to reach `url`.
pub async fn instance_for(url: &MysqlUrl) -> GuestInstance {
    runtime().instantiate(policy_for(url)).await.expect("instantiate")
}

/// Connect options for `url`.
pub fn options(url: &MysqlUrl) -> ConnectOptions {
    url.connect_options()
}

/// The handles of one connection: the connection and every stream lent from it.
pub fn handles_of(records: &[HandleRecord], connection: HandleId) -> Vec<HandleRecord> {
    records.iter().filter(|r| r.id == connection || r.parent == Some(connection)).cloned().collect()
}

/// Asserts the audit has nothing open and the OS has closed the socket of every lent handle.
pub fn assert_all_released_and_closed(instance: &GuestInstance) {
    if let Err(why) = all_released_and_closed(instance) {
        panic!("{why}");
    }
}

/// Whether the audit has nothing open and the OS has closed the socket of every lent handle;
/// `Err` says what is still open.
pub fn all_released_and_closed(instance: &GuestInstance) -> Result<(), String> {
    let records = instance.audit().records();
    let open: Vec<_> = records.iter().filter(|r| r.released.is_none()).collect();
    if !open.is_empty() {
        return Err(format!("handles still open: {open:#?}"));
    }
    for record in &records {
        let (fd, inode) = (record.fd.expect("fd recorded"), record.socket_inode.expect("inode recorded"));
        if leashed::os_fds::socket_is_open(fd, inode) {
            return Err(format!(
                "{} {} was released but its socket (fd {fd}, inode {inode}) is still open",
                record.kind, record.id
            ));
        }
    }
    Ok(())
}

/// Asserts a connection's handles are exactly connection + reader + writer, all released by the
/// guest in the contract's order (writer, reader, connection), and their socket closed.
pub fn assert_guest_released_connection(instance: &GuestInstance, connection: HandleId) {
    if let Err(why) = guest_released_connection(instance, connection) {
        panic!("{why}");
    }
}

/// Whether a connection's handles are exactly connection + reader + writer, all released by the
/// guest in the contract's order (writer, reader, connection), with their socket closed.
pub fn guest_released_connection(instance: &GuestInstance, connection: HandleId) -> Result<(), String> {
    let handles = handles_of(&instance.audit().records(), connection);
    let kinds: Vec<String> = handles.iter().map(|h| h.kind.to_string()).collect();
    if kinds != ["connection", "reader", "writer"] {
        return Err(format!("handles of {connection}: {kinds:?}, not connection, reader and writer"));
    }
    for h in &handles {
        if h.released != Some(leashed::Release::GuestDropped) {
            return Err(format!("{} {} not dropped by the guest: {:?}", h.kind, h.id, h.released));
        }
        if leashed::os_fds::socket_is_open(h.fd.unwrap(), h.socket_inode.unwrap()) {
            return Err(format!("the socket of {} {} is still open", h.kind, h.id));
        }
    }
    let order = |i: usize| handles[i].release_order.unwrap();
    if !(order(2) < order(1) && order(1) < order(0)) {
        return Err(format!("released out of order (writer, reader, connection): {handles:#?}"));
    }
    Ok(())
}

/// The ids of the connections lent so far.
pub fn connections(instance: &GuestInstance) -> Vec<HandleId> {
    instance.audit().records().iter().filter(|r| r.kind == leashed::HandleKind::Connection).map(|r| r.id).collect()
}
