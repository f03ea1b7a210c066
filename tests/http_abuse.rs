//! `leashed serve` against abusive clients, end to end: the real binary on 127.0.0.1, raw TCP
//! clients that upload at 1 byte/s, send half a request head, open more connections than the
//! cap, or sit idle on a kept-alive connection; what the server holds is read from /proc.
//!
//! The plugin is the leaky fixture (which never reads a request body), or for uploads the Rust
//! items plugin, whose `POST /items` reads its body before it needs MySQL; unknown paths of
//! both answer 404 without touching MySQL, so these tests are about HTTP alone. The tests take turns (`one_at_a_time`): their timings are
//! about the timeouts the flags set (seconds, with generous margins), never about speed.

use leashed_tests::served::{Served, leashed_bin, open_fds, open_sockets, raise_open_files_limit};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

const PLUGIN: &str = env!("LEASHED_FIXTURE_LEAKY_PLUGIN");
/// A plugin that reads the body of `POST /items` (up to 64 KiB) before it connects anywhere.
const READS_BODY: &str = env!("LEASHED_PLUGIN_ITEMS_RUST");

/// A request the fixture answers with 404 without a database.
const GET: &[u8] = b"GET /nowhere HTTP/1.1\r\nHost: test\r\n\r\n";
const GET_AND_CLOSE: &[u8] = b"GET /nowhere HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";

fn one_at_a_time() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reads one response from `stream` and returns its status: up to the end of its head, then
/// its body (by Content-Length, chunked to the last chunk, or to the end of the connection).
fn read_response(stream: &mut TcpStream) -> std::io::Result<u16> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut chunk)? {
            0 => return Err(ErrorKind::UnexpectedEof.into()),
            n => bytes.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("an HTTP status line");
    let length = head.lines().find_map(|l| l.strip_prefix("content-length:")).map(|v| v.trim().parse::<usize>());
    let done = |body: &[u8]| match &length {
        Some(Ok(n)) => body.len() >= *n,
        _ if head.contains("transfer-encoding: chunked") => body.ends_with(b"0\r\n\r\n"),
        _ => false,
    };
    while !done(&bytes[head_end..]) {
        match stream.read(&mut chunk)? {
            0 if length.is_none() && !head.contains("chunked") => break,
            0 => return Err(ErrorKind::UnexpectedEof.into()),
            n => bytes.extend_from_slice(&chunk[..n]),
        }
    }
    Ok(status)
}

/// `GET /nowhere` on a connection of its own: the status, and how long the answer took.
fn timed_get(addr: &str) -> (u16, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(GET_AND_CLOSE).unwrap();
    let status = read_response(&mut stream).expect("a response");
    (status, started.elapsed())
}

/// Whether the server closed `stream`: a read sees the end (or a reset) within `within`.
fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

/// 64 clients uploading to a plugin that reads its body, at 1 byte/s (Content-Length far above
/// what they send), wait for their bodies outside the `--max-concurrent 8` slots: fresh GETs
/// are answered in under a second meanwhile, and every slow client gets 408 (or is closed)
/// once the 5 s grace is over, none of them having reached the plugin.
#[test]
fn slow_uploads_take_no_slot_and_get_408_after_the_grace() {
    let _turn = one_at_a_time();
    let served = Served::start(READS_BODY, &["--max-concurrent", "8"]);
    assert_eq!(timed_get(&served.addr).0, 404, "warm-up:\n{}", served.log());

    let head = b"POST /items HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n";
    let mut slow: Vec<TcpStream> = (0..64)
        .map(|_| {
            let mut stream = TcpStream::connect(&served.addr).expect("connects");
            stream.write_all(head).unwrap();
            stream.set_nonblocking(true).unwrap();
            stream
        })
        .collect();
    let started = Instant::now();
    // What each slow client got, and when: its status, or 0 when it was closed without one.
    let mut ended: Vec<Option<(u16, Duration)>> = vec![None; slow.len()];
    let mut fresh = Vec::new();
    let mut second = 0;
    while ended.iter().any(Option::is_none) && started.elapsed() < Duration::from_secs(30) {
        for (stream, ended) in slow.iter_mut().zip(ended.iter_mut()).filter(|(_, e)| e.is_none()) {
            let mut reply = [0u8; 64];
            let got = match stream.read(&mut reply) {
                Ok(0) => Some(0),
                Ok(n) => {
                    Some(String::from_utf8_lossy(&reply[..n]).split(' ').nth(1).map_or(1, |s| s.parse().unwrap_or(1)))
                }
                // Nothing yet: one more byte of the body.
                Err(e) if e.kind() == ErrorKind::WouldBlock => match stream.write(b"x") {
                    Ok(_) => None,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => None,
                    Err(_) => Some(0),
                },
                Err(_) => Some(0),
            };
            *ended = got.map(|status| (status, started.elapsed()));
        }
        // While every upload is still pending, a fresh request gets a slot at once.
        if started.elapsed() < Duration::from_secs(4) {
            fresh.push(timed_get(&served.addr));
        }
        second += 1;
        if let Some(rest) = Duration::from_secs(second).checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    eprintln!("fresh GETs during the slow uploads: {fresh:?}");
    assert!(fresh.len() >= 3, "{fresh:?}");
    for (status, took) in &fresh {
        assert_eq!(*status, 404, "{}", served.log());
        assert!(*took < Duration::from_secs(1), "a fresh GET took {took:?} while uploads trickled:\n{}", served.log());
    }
    let ended: Vec<(u16, Duration)> = ended.into_iter().map(|e| e.expect("every slow client ended")).collect();
    let got_408 = ended.iter().filter(|(status, _)| *status == 408).count();
    let latest = ended.iter().map(|(_, at)| *at).max().unwrap();
    eprintln!("slow clients: {got_408} of 64 read 408, the others were closed; the last ended after {latest:?}");
    assert!(ended.iter().all(|(status, _)| matches!(status, 0 | 408)), "{ended:?}");
    assert!(latest < Duration::from_secs(15), "the slow clients ended only after {latest:?}");
    // The server logged each one as 408 (whether the client read it or not), none as served.
    let until = Instant::now() + Duration::from_secs(10);
    while served.log().matches("status=408").count() < 64 {
        assert!(Instant::now() < until, "fewer than 64 refusals logged:\n{}", served.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = served.log();
    let uploads: Vec<&str> = log.lines().filter(|l| l.contains("request=POST /items")).collect();
    assert_eq!(uploads.len(), 64, "{log}");
    assert!(uploads.iter().all(|l| l.contains("status=408") && l.contains("--body-min-rate")), "{log}");
}

/// A body longer than `--body-buffer 1` (KiB) reaches the plugin as a stream: a 10 KiB body
/// sent at once is read whole (the plugin answers 400 for its JSON, not for an unreadable
/// body); one whose rest trickles at 1 byte/s is cut off after the grace, so the plugin's read
/// fails, and the log says why.
#[test]
fn a_body_past_the_buffer_is_streamed_to_the_plugin_under_the_minimum_rate() {
    let _turn = one_at_a_time();
    let served = Served::start(READS_BODY, &["--body-buffer", "1"]);
    let head = |length: usize| {
        format!(
            "POST /items HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        )
    };
    let mut whole = TcpStream::connect(&served.addr).expect("connects");
    whole.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    whole.write_all(head(10 * 1024).as_bytes()).unwrap();
    whole.write_all(&[b'x'; 10 * 1024]).unwrap();
    let mut reply = String::new();
    let _ = whole.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(!reply.contains("cannot read the request body"), "the streamed body was not read whole: {reply}");

    let started = Instant::now();
    let mut trickle = TcpStream::connect(&served.addr).expect("connects");
    trickle.write_all(head(10 * 1024).as_bytes()).unwrap();
    trickle.write_all(&[b'x'; 2048]).unwrap();
    trickle.set_nonblocking(true).unwrap();
    let mut reply = Vec::new();
    while started.elapsed() < Duration::from_secs(30) {
        let mut chunk = [0u8; 1024];
        match trickle.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if reply.is_empty() && trickle.write(b"x").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(if reply.is_empty() { 1000 } else { 50 }));
            }
            Err(_) => break,
        }
    }
    let reply = String::from_utf8_lossy(&reply);
    let took = started.elapsed();
    eprintln!("the trickled body was cut off after {took:?}: {}", reply.lines().next().unwrap_or_default());
    assert!(reply.starts_with("HTTP/1.1 400") && reply.contains("cannot read the request body"), "{reply}");
    // 5 s of grace, and 2 s more earned by the first 2 KiB at 1 KiB/s.
    assert!(took >= Duration::from_secs(6) && took < Duration::from_secs(15), "{took:?}");
    assert!(served.log().contains("--body-min-rate): the rest is cut off"), "{}", served.log());
}

/// 3,000 connections that send half a request head are all closed within `--header-timeout 2`:
/// the server's open files return to where they were within the timeout plus a margin, and
/// every client sees its connection end.
#[test]
fn three_thousand_half_sent_heads_are_closed_within_the_header_timeout() {
    let _turn = one_at_a_time();
    const CLIENTS: usize = 3000;
    let limit = raise_open_files_limit(CLIENTS as u64 + 1000);
    assert!(limit >= CLIENTS as u64 + 200, "the open-files limit ({limit}) is too low for {CLIENTS} clients");
    let served = Served::start(PLUGIN, &["--header-timeout", "2", "--max-client-connections", "4000"]);
    let pid = served.pid();
    let baseline = open_fds(pid);

    let started = Instant::now();
    let mut peak = baseline;
    let mut clients = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        let mut stream = TcpStream::connect(&served.addr).expect("connects");
        stream.write_all(b"GET /nowhere HTTP/1.1\r\nHost: te").unwrap();
        clients.push(stream);
        if i % 100 == 0 {
            peak = peak.max(open_fds(pid));
        }
    }
    let opened = Instant::now();
    let back = loop {
        let now = open_fds(pid);
        peak = peak.max(now);
        if now <= baseline {
            break opened.elapsed();
        }
        assert!(
            opened.elapsed() < Duration::from_secs(2 + 8),
            "{now} files open {:?} after the last half head, against {baseline} before",
            opened.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!(
        "server files: {baseline} before, peak {peak}, back to {baseline} {back:?} after the last of {CLIENTS} \
         connections opened (opening them took {:?})",
        opened - started
    );
    assert!(peak >= baseline + 1000, "the server never held the connections (peak {peak}, baseline {baseline})");
    let still_open = clients.iter_mut().map(|s| closed_by_server(s, Duration::from_millis(200))).filter(|c| !c).count();
    assert_eq!(still_open, 0, "connections the server did not close");
}

/// With `--max-client-connections 50`, 120 connections never give the server more than 50
/// sockets beyond its own: the rest wait in the listen backlog, unanswered. Once 10 of the
/// accepted ones close, the waiting ones are accepted in turn and all served.
#[test]
fn the_connection_cap_holds_and_waiting_connections_are_served_once_some_close() {
    let _turn = one_at_a_time();
    let served = Served::start(
        PLUGIN,
        &["--max-concurrent", "8", "--max-client-connections", "50", "--header-timeout", "60", "--idle-timeout", "60"],
    );
    let pid = served.pid();
    let baseline = open_sockets(pid);
    let most = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (most, stop) = (most.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                most.fetch_max(open_sockets(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };

    let mut clients: Vec<Option<TcpStream>> =
        (0..120).map(|_| Some(TcpStream::connect(&served.addr).expect("connects (into the backlog)"))).collect();
    let until = Instant::now() + Duration::from_secs(10);
    while open_sockets(pid) < baseline + 50 {
        assert!(Instant::now() < until, "the server did not accept 50 connections");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(open_sockets(pid), baseline + 50, "the server holds exactly its 50 connections");

    // The connections past the cap ask, and are not answered while they wait.
    let waiting = &mut clients[50..];
    for stream in waiting.iter_mut().flatten() {
        stream.write_all(GET_AND_CLOSE).unwrap();
    }
    std::thread::sleep(Duration::from_secs(1));
    for stream in waiting.iter_mut().flatten() {
        stream.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        let read = stream.read(&mut byte);
        assert!(matches!(&read, Err(e) if e.kind() == ErrorKind::WouldBlock), "a waiting connection got {read:?}");
        stream.set_nonblocking(false).unwrap();
    }

    // Ten accepted ones close: the waiting ones get their turn, and their answers.
    let closed_at = Instant::now();
    clients[..10].iter_mut().for_each(|client| drop(client.take()));
    for stream in clients[50..].iter_mut().flatten() {
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        assert_eq!(read_response(stream).expect("an answer once a place frees"), 404);
    }
    let all_served = closed_at.elapsed();
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let most = most.load(Ordering::Relaxed);
    eprintln!(
        "server sockets: {baseline} of its own, at most {most} in all; 70 waiting served {all_served:?} after 10 closed"
    );
    assert!(most <= baseline + 50, "the server held {most} sockets, above {baseline} + 50");
    assert!(all_served < Duration::from_secs(20), "{all_served:?}");
    assert!(served.log().contains("(--max-client-connections)"), "{}", served.log());
}

/// A kept-alive connection is closed after `--idle-timeout 3` with no request; the time it sits
/// idle between requests is not counted against `--header-timeout 1` (a request after 2 s idle
/// is answered).
#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let _turn = one_at_a_time();
    let served = Served::start(PLUGIN, &["--header-timeout", "1", "--idle-timeout", "3"]);
    let mut stream = TcpStream::connect(&served.addr).expect("connects");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(GET).unwrap();
    assert_eq!(read_response(&mut stream).unwrap(), 404);
    std::thread::sleep(Duration::from_secs(2));
    stream.write_all(GET).unwrap();
    assert_eq!(read_response(&mut stream).expect("still open after 2 s idle"), 404);

    let idle_from = Instant::now();
    assert!(closed_by_server(&mut stream, Duration::from_secs(10)), "the idle connection was never closed");
    let after = idle_from.elapsed();
    eprintln!("the idle connection was closed {after:?} after its last response");
    assert!(after >= Duration::from_millis(2500), "closed after only {after:?}, before the idle timeout");
    assert!(after < Duration::from_secs(3 + 3), "closed only after {after:?}");
}

/// Zero, negative or contradictory client limits are usage errors (exit 2) naming the flag.
#[test]
fn zero_or_contradictory_client_limits_are_usage_errors() {
    let cases: [(&[&str], &str); 6] = [
        (&["--header-timeout", "0"], "--header-timeout must be a positive number of seconds"),
        (&["--idle-timeout=-1"], "--idle-timeout must be a positive number of seconds"),
        (&["--body-buffer", "0"], "--body-buffer must be between 1 and"),
        (&["--body-min-rate", "0"], "--body-min-rate must be at least 1 byte per second"),
        (&["--max-client-connections", "0"], "must be at least --max-concurrent"),
        (
            &["--max-concurrent", "8", "--max-client-connections", "4"],
            "--max-client-connections (4) must be at least --max-concurrent (8)",
        ),
    ];
    for (args, message) in cases {
        let out = Command::new(leashed_bin()).args(["serve", "missing.wasm"]).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}
