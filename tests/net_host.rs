//! leashed:net's host side called directly, without wasm: the drop rules, stream lending, I/O,
//! timeouts and the audit, over real TCP to a local listener.

use leashed::bindings::leashed::net::tcp::{ConnectOptions, ErrorCode};
use leashed::net::error::NetError;
use leashed::state::HostState;
use leashed::{AllowEntry, Allowlist, HandleKind, Policy, Release};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn opts() -> ConnectOptions {
    ConnectOptions { connect_timeout_ms: None, read_timeout_ms: Some(300), write_timeout_ms: None, nodelay: true }
}

/// A listener on 127.0.0.1 and a host state allowed to reach it.
async fn listener_and_state() -> (TcpListener, HostState, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let allow = Allowlist::new([AllowEntry::host_port("127.0.0.1", port)]);
    (listener, HostState::new(Policy::allowing(allow)), port)
}

fn code(result: Result<impl std::fmt::Debug, NetError>) -> ErrorCode {
    match result {
        Err(NetError::Code(code)) => code,
        other => panic!("expected an error code, got {other:?}"),
    }
}

/// Strict policy: dropping a connection while its reader lives traps with "resource has
/// children", naming the live stream; once the streams are dropped, the drop succeeds.
#[tokio::test]
async fn dropping_a_connection_with_live_streams_traps() {
    let (_listener, mut state, port) = listener_and_state().await;
    let conn = state.lend_connection("127.0.0.1".into(), port, opts(), vec![]).await.unwrap();
    let rep = conn.rep();
    let reader = state.lend_reader(&wasmtime::component::Resource::new_borrow(rep), vec![]).unwrap();

    let trap = state.drop_connection(wasmtime::component::Resource::new_own(rep), vec![]).unwrap_err();
    let message = trap.to_string();
    assert!(message.starts_with("resource has children: connection #1"), "{message}");
    assert!(message.contains("reader #2 still lent"), "{message}");
    assert_eq!(state.audit.summary().open, 2, "nothing was released by the refused drop");

    state.drop_stream(reader, vec![]).unwrap();
    state.drop_connection(wasmtime::component::Resource::new_own(rep), vec![]).unwrap();
    let records = state.audit.records();
    assert!(records.iter().all(|r| r.released == Some(Release::GuestDropped)), "{records:#?}");
}

/// A connection lends one reader and one writer at a time; a second gets `invalid-state`,
/// and after the first is dropped a new one can be lent.
#[tokio::test]
async fn one_reader_and_one_writer_at_a_time() {
    let (_listener, mut state, port) = listener_and_state().await;
    let conn = state.lend_connection("127.0.0.1".into(), port, opts(), vec![]).await.unwrap();
    let borrow = || wasmtime::component::Resource::new_borrow(conn.rep());
    let reader = state.lend_reader(&borrow(), vec![]).unwrap();
    assert_eq!(code(state.lend_reader(&borrow(), vec![])), ErrorCode::InvalidState);
    let writer = state.lend_writer(&borrow(), vec![]).unwrap();
    assert_eq!(code(state.lend_writer(&borrow(), vec![])), ErrorCode::InvalidState);
    state.drop_stream(reader, vec![]).unwrap();
    let again = state.lend_reader(&borrow(), vec![]).unwrap();
    let kinds: Vec<HandleKind> = state.audit.records().iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [HandleKind::Connection, HandleKind::Reader, HandleKind::Writer, HandleKind::Reader]);
    state.drop_stream(again, vec![]).unwrap();
    state.drop_stream(writer, vec![]).unwrap();
    state.drop_connection(conn, vec![]).unwrap();
    assert_eq!(state.audit.summary().open, 0);
}

/// Bytes written arrive at the peer; the peer's bytes come back from `read`; the peer
/// closing its side reads as end of stream (an empty list); a silent peer times out.
#[tokio::test]
async fn streams_carry_bytes_end_of_stream_and_timeouts() {
    let (listener, mut state, port) = listener_and_state().await;
    let conn = state.lend_connection("127.0.0.1".into(), port, opts(), vec![]).await.unwrap();
    let (mut peer, _) = listener.accept().await.unwrap();
    let reader = state.lend_reader(&wasmtime::component::Resource::new_borrow(conn.rep()), vec![]).unwrap();
    let writer = state.lend_writer(&wasmtime::component::Resource::new_borrow(conn.rep()), vec![]).unwrap();
    let r = || wasmtime::component::Resource::<leashed::net::socket::LentReader>::new_borrow(reader.rep());
    let w = || wasmtime::component::Resource::<leashed::net::socket::LentWriter>::new_borrow(writer.rep());

    assert_eq!(state.write(&w(), b"ping", vec![]).await.unwrap(), 4);
    state.flush(&w(), vec![]).unwrap();
    let mut got = [0; 4];
    peer.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"ping");

    assert_eq!(code(state.read(&r(), 16, vec![]).await), ErrorCode::TimedOut, "read timeout of 300 ms");
    assert_eq!(code(state.read(&r(), 0, vec![]).await), ErrorCode::InvalidState, "max 0 is not end of stream");

    peer.write_all(b"pong").await.unwrap();
    assert_eq!(state.read(&r(), 16, vec![]).await.unwrap(), b"pong");
    drop(peer);
    assert_eq!(state.read(&r(), 16, vec![]).await.unwrap(), Vec::<u8>::new(), "end of stream");

    state.drop_stream(writer, vec![]).unwrap();
    state.drop_stream(reader, vec![]).unwrap();
    state.drop_connection(conn, vec![]).unwrap();
}

/// Handles the guest never dropped are reclaimed when the store's state is torn down, and the
/// audit says so; the OS socket is then closed.
#[tokio::test]
async fn teardown_reclaims_what_the_guest_kept() {
    let (_listener, mut state, port) = listener_and_state().await;
    let conn = state.lend_connection("127.0.0.1".into(), port, opts(), vec![]).await.unwrap();
    let _reader = state.lend_reader(&wasmtime::component::Resource::new_borrow(conn.rep()), vec![]).unwrap();
    let audit = state.audit.clone();
    assert_eq!(audit.summary().open, 2);
    drop(state);
    let records = audit.records();
    assert!(records.iter().all(|r| r.released == Some(Release::StoreTeardown)), "{records:#?}");
    for r in records {
        assert!(!leashed::os_fds::socket_is_open(r.fd.unwrap(), r.socket_inode.unwrap()));
    }
}

/// The host's connect timeout applies even when the guest asks for none: a listener whose
/// accept queue is full drops new SYNs, so the connect hangs until the host gives up.
#[tokio::test]
async fn connect_timeout_is_enforced() {
    let listener = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    listener.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    // Fill the accept queue (nobody accepts), so the next SYN is dropped.
    let mut fillers = Vec::new();
    while let Ok(Ok(s)) = tokio::time::timeout(Duration::from_millis(200), tokio::net::TcpStream::connect(addr)).await {
        fillers.push(s);
    }
    let allow = Allowlist::new([AllowEntry::host_port("127.0.0.1", addr.port())]);
    let mut state = HostState::new(Policy { connect_timeout: Duration::from_millis(300), ..Policy::allowing(allow) });
    let started = std::time::Instant::now();
    let result = state.lend_connection("127.0.0.1".into(), addr.port(), opts(), vec![]).await;
    assert_eq!(code(result), ErrorCode::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(5), "the 300 ms limit was not applied");
    assert_eq!(state.audit.summary().lent, 0);
}

/// Deferred policy: dropping the connection first is allowed and keeps the socket open; the
/// socket closes when the last stream is dropped (Python's makefile semantics).
#[tokio::test]
async fn deferred_closes_the_socket_with_the_last_stream() {
    let (_listener, mut state, port) = listener_and_state().await;
    state.policy.close = leashed::ClosePolicy::Deferred;
    let conn = state.lend_connection("127.0.0.1".into(), port, opts(), vec![]).await.unwrap();
    let rep = conn.rep();
    let reader = state.lend_reader(&wasmtime::component::Resource::new_borrow(rep), vec![]).unwrap();
    state.drop_connection(conn, vec![]).expect("deferred allows the drop");
    let record = state.audit.records()[0].clone();
    let (fd, inode) = (record.fd.unwrap(), record.socket_inode.unwrap());
    assert_eq!(record.released, Some(Release::GuestDropped));
    assert!(leashed::os_fds::socket_is_open(fd, inode), "the reader keeps the socket open");
    state.drop_stream(reader, vec![]).unwrap();
    assert!(!leashed::os_fds::socket_is_open(fd, inode), "the last stream's drop closes it");
    assert!(state.table.is_empty(), "the dropped connection's entry went with its last stream");
}

/// Reclaim policy: dropping the connection closes the socket at once; the reader left behind
/// gets `closed`, and the late use is recorded with both sites: where the stream was used and
/// where the connection was dropped.
#[tokio::test]
async fn reclaim_closes_at_once_and_records_late_use() {
    let (_listener, mut state, port) = listener_and_state().await;
    state.policy.close = leashed::ClosePolicy::Reclaim;
    let conn = state.lend_connection("127.0.0.1".into(), port, opts(), vec![]).await.unwrap();
    let rep = conn.rep();
    let reader = state.lend_reader(&wasmtime::component::Resource::new_borrow(rep), vec![]).unwrap();
    state.drop_connection(conn, vec!["guest_force_close".into()]).expect("reclaim allows the drop");
    let record = state.audit.records()[0].clone();
    assert!(!leashed::os_fds::socket_is_open(record.fd.unwrap(), record.socket_inode.unwrap()));
    let r = wasmtime::component::Resource::<leashed::net::socket::LentReader>::new_borrow(reader.rep());
    assert_eq!(code(state.read(&r, 8, vec!["guest_poke".into()]).await), ErrorCode::Closed);
    let events = state.audit.events();
    let [leashed::audit::Event::LateUse { op, handle, connection, use_site, reclaim_site, .. }] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!((*op, *handle, *connection), ("read", leashed::HandleId(2), leashed::HandleId(1)));
    assert_eq!(
        (&use_site[..], &reclaim_site[..]),
        (&["guest_poke".to_string()][..], &["guest_force_close".to_string()][..])
    );
    state.drop_stream(reader, vec![]).unwrap();
}

/// Past the handle limit, lending a stream gets `limit-reached`, not a trap.
#[tokio::test]
async fn handles_past_the_limit_get_limit_reached() {
    let (_listener, mut state, port) = listener_and_state().await;
    state.policy.max_handles = 2;
    let conn = state.lend_connection("127.0.0.1".into(), port, opts(), vec![]).await.unwrap();
    let borrow = || wasmtime::component::Resource::new_borrow(conn.rep());
    let reader = state.lend_reader(&borrow(), vec![]).unwrap();
    assert_eq!(code(state.lend_writer(&borrow(), vec![])), ErrorCode::LimitReached);
    assert!(matches!(
        state.audit.events()[..],
        [leashed::audit::Event::LimitReached { what: "lent handles", limit: 2, .. }]
    ));
    state.drop_stream(reader, vec![]).unwrap();
    let writer = state.lend_writer(&borrow(), vec![]).expect("room again after the reader was dropped");
    state.drop_stream(writer, vec![]).unwrap();
    state.drop_connection(conn, vec![]).unwrap();
}

/// A long-lived store stays bounded: of 1,100 connections given back whole, each in a call of
/// its own, only the newest 1,024 (and their calls) are kept and the rest only counted, while a
/// leak made before all of them is never forgotten.
#[tokio::test]
async fn a_long_lived_store_forgets_what_was_given_back_but_never_a_leak() {
    use leashed::audit::{KEPT_CLEAN_CALLS, KEPT_CLEAN_CONNECTIONS};
    let (listener, mut state, port) = listener_and_state().await;
    tokio::spawn(async move { while listener.accept().await.is_ok() {} });
    let borrow = |conn: &wasmtime::component::Resource<_>| wasmtime::component::Resource::new_borrow(conn.rep());

    let leaky = state.audit.begin_call("leaky()");
    let kept_conn = state.lend_connection("127.0.0.1".into(), port, opts(), vec![]).await.unwrap();
    let _kept_reader = state.lend_reader(&borrow(&kept_conn), vec![]).unwrap();
    state.audit.end_call(leaky, false);
    let rounds = 1100;
    for i in 0..rounds {
        let call = state.audit.begin_call(format!("round({i})"));
        let conn = state.lend_connection("127.0.0.1".into(), port, opts(), vec![]).await.unwrap();
        let reader = state.lend_reader(&borrow(&conn), vec![]).unwrap();
        let writer = state.lend_writer(&borrow(&conn), vec![]).unwrap();
        state.drop_stream(writer, vec![]).unwrap();
        state.drop_stream(reader, vec![]).unwrap();
        state.drop_connection(conn, vec![]).unwrap();
        state.audit.end_call(call, false);
    }

    let summary = state.audit.summary();
    assert_eq!((summary.lent, summary.released, summary.open), (2 + 3 * rounds, 3 * rounds, 2));
    let forgotten = state.audit.forgotten();
    assert_eq!(forgotten.handles as usize, 3 * (rounds - KEPT_CLEAN_CONNECTIONS));
    assert_eq!(forgotten.calls as usize, rounds - KEPT_CLEAN_CALLS);
    assert_eq!(state.audit.records().len(), 2 + 3 * KEPT_CLEAN_CONNECTIONS);
    assert_eq!(state.audit.calls().len(), 1 + KEPT_CLEAN_CALLS);

    let report = state.audit.store_report();
    assert_eq!((report.lent, report.leaked_handles()), (2 + 3 * rounds, 2), "{}", report.to_text());
    assert!(report.os_mismatches.is_empty(), "{:?}", report.os_mismatches);
    let text = report.to_text();
    assert!(text.contains("Direct leak: connection #1 "), "{text}");
    assert!(text.contains(&format!("only counts, no longer keeps: {} handles", forgotten.handles)), "{text}");
    let leaky_report = state.audit.call_report(leaky);
    assert!(leaky_report.to_text().contains("leaked lent handles in call #1 `leaky()`"), "{}", leaky_report.to_text());
}

/// The host's write timeout applies even when the guest asks for none: a peer that never reads
/// lets the kernel's buffers fill, and the write fails with `timed-out` instead of hanging.
#[tokio::test]
async fn write_timeout_is_enforced() {
    let (listener, mut state, port) = listener_and_state().await;
    state.policy.write_timeout = Some(Duration::from_millis(300));
    let conn = state.lend_connection("127.0.0.1".into(), port, opts(), vec![]).await.unwrap();
    let (_silent_peer, _) = listener.accept().await.unwrap();
    let writer = state.lend_writer(&wasmtime::component::Resource::new_borrow(conn.rep()), vec![]).unwrap();
    let w = wasmtime::component::Resource::<leashed::net::socket::LentWriter>::new_borrow(writer.rep());
    let started = std::time::Instant::now();
    let result = state.write(&w, &vec![0u8; 64 << 20], vec![]).await;
    assert_eq!(code(result), ErrorCode::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(10), "the 300 ms limit was not applied");
    state.drop_stream(writer, vec![]).unwrap();
    state.drop_connection(conn, vec![]).unwrap();
}
