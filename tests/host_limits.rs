//! What a guest hands the host is bounded before it is kept: refusals repeated are one counted
//! event and long host names are cut; no close policy lets a guest hold more sockets than
//! `max_connections`; and a parked session's key, state and count have caps. The host side is
//! called directly (no wasm), over real TCP to a local listener. (The audit failing closed has
//! a test binary of its own, tests/fail_closed.rs: it takes every fd of its process.)

use leashed::audit::{Event, KEPT_DENIALS, MAX_HOST_NAME};
use leashed::bindings::leashed::net::tcp::{ConnectOptions, ErrorCode};
use leashed::net::error::NetError;
use leashed::net::parking::{ParkingLimits, ParkingLot, SessionReuse};
use leashed::state::HostState;
use leashed::{AllowEntry, Allowlist, ClosePolicy, Policy};
use std::sync::Arc;
use tokio::net::TcpListener;
use wasmtime::component::Resource;

fn opts() -> ConnectOptions {
    ConnectOptions { connect_timeout_ms: None, read_timeout_ms: Some(300), write_timeout_ms: None, nodelay: true }
}

/// A listener on 127.0.0.1 and a policy allowed to reach it.
async fn listener_and_policy() -> (TcpListener, Policy, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let allow = Allowlist::new([AllowEntry::host_port("127.0.0.1", port)]);
    (listener, Policy::allowing(allow), port)
}

fn code(result: Result<impl std::fmt::Debug, NetError>) -> ErrorCode {
    match result {
        Err(NetError::Code(code)) => code,
        other => panic!("expected an error code, got {other:?}"),
    }
}

/// 300 denied connects to the same 1 MiB name are one audit event counted 300 times, and the
/// name it keeps is cut to DNS's 253 bytes; distinct names past the kept number are only
/// counted.
#[tokio::test]
async fn repeated_denials_are_one_event_with_the_name_cut() {
    let (_listener, policy, port) = listener_and_policy().await;
    let mut state = HostState::new(policy);
    let huge = "a".repeat(1 << 20);
    for _ in 0..300 {
        assert_eq!(code(state.lend_connection(huge.clone(), port, opts(), vec![]).await), ErrorCode::Denied);
    }
    let events = state.audit.events();
    let [Event::Denied { host, times: 300, .. }] = &events[..] else { panic!("{events:?}") };
    assert!(host.len() < MAX_HOST_NAME + 32 && host.starts_with(&"a".repeat(MAX_HOST_NAME)), "{}", host.len());

    for i in 0..KEPT_DENIALS + 40 {
        let name = format!("other-{i}.invalid");
        assert_eq!(code(state.lend_connection(name, port, opts(), vec![]).await), ErrorCode::Denied);
    }
    let denials = state.audit.events().iter().filter(|e| matches!(e, Event::Denied { .. })).count();
    assert_eq!(denials, KEPT_DENIALS, "distinct denials kept");
    assert_eq!(state.audit.forgotten().events, 41, "the rest are counted");
}

/// Under `deferred`, a connection dropped while its reader lives keeps its socket open, so it
/// still counts against `max_connections`: a guest cannot hold `max_handles` sockets by
/// dropping connections and keeping readers.
#[tokio::test]
async fn a_dropped_connection_kept_open_by_its_reader_still_counts() {
    let (_listener, policy, port) = listener_and_policy().await;
    let mut state =
        HostState::new(Policy { close: ClosePolicy::Deferred, max_connections: 4, max_handles: 64, ..policy });
    let mut readers = Vec::new();
    let mut refused = None;
    for _ in 0..20 {
        match state.lend_connection("127.0.0.1".into(), port, opts(), vec![]).await {
            Ok(conn) => {
                let rep = conn.rep();
                readers.push(state.lend_reader(&Resource::new_borrow(rep), vec![]).unwrap());
                state.drop_connection(Resource::new_own(rep), vec![]).unwrap();
            }
            Err(e) => {
                refused = Some(code(Err::<(), _>(e)));
                break;
            }
        }
    }
    assert_eq!(readers.len(), 4, "sockets held");
    assert_eq!(refused, Some(ErrorCode::LimitReached));
    // Dropping a reader releases its socket, and with it the place.
    state.drop_stream(readers.pop().unwrap(), vec![]).unwrap();
    let conn = state.lend_connection("127.0.0.1".into(), port, opts(), vec![]).await.expect("a place came back");
    drop(conn);
}

/// `park` refuses a key or a state past its cap, and the lot holds at most `max_parked`
/// sockets whatever the keys.
#[tokio::test]
async fn parking_has_caps_on_keys_states_and_the_lot() {
    let (listener, policy, port) = listener_and_policy().await;
    let limits = ParkingLimits { per_key: 8, max_parked: 2, ..ParkingLimits::default() };
    let lot = Arc::new(ParkingLot::new(limits));
    let reuse = SessionReuse { lot: lot.clone(), scope: "test".into() };
    let mut state = HostState::new(Policy { reuse: Some(reuse), ..policy });
    // Keep the server ends open, so the parked sockets stay quiet and whole.
    let accepting = tokio::spawn(async move {
        let mut peers = Vec::new();
        while let Ok((peer, _)) = listener.accept().await {
            peers.push(peer);
        }
    });

    let conn = state.lend_connection("127.0.0.1".into(), port, opts(), vec![]).await.unwrap();
    let long_key = "k".repeat(leashed::net::reuse::MAX_KEY_BYTES + 1);
    assert_eq!(code(state.park_connection(&conn, long_key, vec![])), ErrorCode::LimitReached);
    let big_state = vec![0; leashed::net::reuse::MAX_STATE_BYTES + 1];
    assert_eq!(code(state.park_connection(&conn, "k".into(), big_state)), ErrorCode::LimitReached);
    state.drop_connection(conn, vec![]).unwrap();
    assert_eq!(lot.len(), 0, "a refused park parks nothing");

    let mut refused = 0;
    for i in 0..4 {
        let conn = state.lend_connection("127.0.0.1".into(), port, opts(), vec![]).await.unwrap();
        if state.park_connection(&conn, format!("key-{i}"), vec![1, 2, 3]).is_err() {
            refused += 1;
        }
        state.drop_connection(conn, vec![]).unwrap();
    }
    assert_eq!(lot.len(), 2, "the lot's cap");
    assert_eq!(refused, 2);
    assert_eq!(state.audit.summary().parked, 2);
    lot.clear();
    accepting.abort();
}
