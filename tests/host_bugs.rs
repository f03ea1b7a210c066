//! Host bugs the audit must catch, injected for real: a handle released twice, a released socket
//! kept open by a stray duplicate fd, and an open handle whose socket the OS no longer has. Each
//! must show up in the report as a HOST BUG, with what a person needs to find it.

use leashed::audit::Event;
use leashed::bindings::leashed::net::tcp::ConnectOptions;
use leashed::net::socket::LentConnection;
use leashed::state::HostState;
use leashed::{AllowEntry, Allowlist, Policy, Release};
use std::os::fd::{BorrowedFd, OwnedFd};
use tokio::net::TcpListener;
use wasmtime::component::Resource;

fn opts() -> ConnectOptions {
    ConnectOptions { connect_timeout_ms: None, read_timeout_ms: Some(300), write_timeout_ms: None, nodelay: true }
}

/// A host state with one lent connection (to a local listener) and its reader and writer.
async fn state_with_connection() -> (TcpListener, HostState, Resource<LentConnection>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut state = HostState::new(Policy::allowing(Allowlist::new([AllowEntry::host_port("127.0.0.1", port)])));
    let conn = state.lend_connection("127.0.0.1".into(), port, opts(), vec!["guest_connect".into()]).await.unwrap();
    (listener, state, conn)
}

/// A host that records the guest's drop twice (say, a policy path that forgot the guard had
/// recorded it): the first release stands, and the report names both releases, with the
/// guest's site for the first and the host's own backtrace for the second.
#[tokio::test]
async fn a_handle_released_twice_is_a_host_bug_with_both_sites() {
    let (_listener, mut state, conn) = state_with_connection().await;
    let guard = &mut state.table.get_mut(&conn).unwrap().guard;
    guard.record_guest_drop_now(vec!["guest_close".into(), "run".into()]);
    guard.record_guest_drop_now(vec!["guest_close_again".into()]);

    assert_eq!(state.audit.records()[0].released, Some(Release::GuestDropped), "the first release stands");
    let events = state.audit.events();
    let [Event::DoubleRelease { first_site, second_site, .. }] = &events[..] else { panic!("{events:?}") };
    assert_eq!(first_site, &["guest_close", "run"]);
    assert!(
        second_site.iter().any(|frame| frame.contains("record_guest_drop_now")),
        "the host backtrace names the host function that released it again: {second_site:#?}"
    );
    let report = state.audit.store_report();
    assert!(!report.is_clean());
    let text = report.to_text();
    assert!(text.contains("HOST BUG: #1 released twice: first guest-dropped, then guest-dropped"), "{text}");
    assert!(text.contains("first release (guest-dropped) at:\n      #0 guest_close\n      #1 run\n"), "{text}");
    assert!(text.contains("second release at (host backtrace):\n      #0 "), "{text}");
    let json = serde_json::to_value(report.to_json()).unwrap();
    assert_eq!(json["events"][0]["kind"], "double-release");
    assert_eq!(json["events"][0]["first_site"][0], "guest_close");
    assert!(json["events"][0]["second_site"].as_array().is_some_and(|s| !s.is_empty()), "{json}");
}

/// A stray duplicate of a lent socket's fd (a host that dups and forgets) keeps the socket open
/// after the guest released every handle: the OS cross-check reports it.
#[tokio::test]
async fn a_released_socket_kept_open_by_a_stray_fd_is_a_host_bug() {
    let (_listener, mut state, conn) = state_with_connection().await;
    let record = state.audit.records()[0].clone();
    let (fd, inode) = (record.fd.unwrap(), record.socket_inode.unwrap());
    // SAFETY: `fd` is the lent connection's socket, open while `conn` is in the table.
    let stray: OwnedFd = unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned().unwrap();
    state.drop_connection(conn, vec![]).unwrap();
    assert_eq!(state.audit.summary().open, 0, "the guest released everything");

    let report = state.audit.store_report();
    let [mismatch] = &report.os_mismatches[..] else { panic!("{:?}", report.os_mismatches) };
    assert_eq!((mismatch.connection, mismatch.socket_inode), (1, inode));
    assert_eq!((mismatch.expected_open, mismatch.actually_open), (false, true));
    assert!(!report.is_clean());
    let text = report.to_text();
    assert!(
        text.contains(&format!(
            "HOST BUG: the socket of connection #1 (fd {fd}, socket:[{inode}]) is open but the audit expects it closed"
        )),
        "{text}"
    );

    drop(stray);
    assert!(state.audit.store_report().is_clean(), "with the stray fd closed, the OS agrees");
}

/// An open handle whose socket the OS no longer has (a host that closed the fd behind the
/// table's back; simulated by pointing the fd at /dev/null): the cross-check reports it.
#[tokio::test]
async fn an_open_handle_whose_socket_is_gone_is_a_host_bug() {
    let (_listener, mut state, conn) = state_with_connection().await;
    let record = state.audit.records()[0].clone();
    let (fd, inode) = (record.fd.unwrap(), record.socket_inode.unwrap());
    let devnull = std::fs::File::open("/dev/null").unwrap();
    // SAFETY: replaces our own socket's fd number with /dev/null; the socket's last fd goes away,
    // which is the bug being simulated. The stream later closes the /dev/null fd instead.
    assert!(unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&devnull), fd) } >= 0);

    let report = state.audit.store_report();
    assert!(report.leaks.len() == 1, "the connection is still lent: {}", report.to_text());
    let [mismatch] = &report.os_mismatches[..] else { panic!("{:?}", report.os_mismatches) };
    assert_eq!((mismatch.connection, mismatch.socket_inode), (1, inode));
    assert_eq!((mismatch.expected_open, mismatch.actually_open), (true, false));
    let text = report.to_text();
    assert!(
        text.contains(&format!(
            "HOST BUG: the socket of connection #1 (fd {fd}, socket:[{inode}]) is closed but the audit expects it open"
        )),
        "{text}"
    );
    state.drop_connection(conn, vec![]).unwrap();
}
