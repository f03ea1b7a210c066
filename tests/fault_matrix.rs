//! The fault matrix: every fault the scriptable proxy injects (a cut either way, a reset, a stall
//! past the read timeout, a truncated packet, a flipped header byte, a slow drip) at every phase
//! of a MySQL conversation (greeting, auth switch, TLS handshake, query, mid-result, prepared
//! execute, a row stream's next batch, LOCAL INFILE upload), through the real guest to the
//! private MariaDB.
//!
//! Every fault must end with an io, protocol or timed-out error whose text names the server, the
//! guest's force-close (writer, reader, connection, in that order), nothing open in the audit, the
//! socket gone from /proc/self/fd, and no panic; a drip must succeed. One test per phase prints
//! its row of the table (`cargo test --test fault_matrix -- --nocapture`).

use leashed::bindings::{ConnectOptions, ErrorCode, LocalFile, MysqlError, TlsMode, Value};
use leashed::mysql_url::MysqlUrl;
use leashed::{GuestInstance, MysqlHandle};
use leashed_tests::fault_proxy::{Fault, FaultProxy, Hit, Opening, Phase};
use leashed_tests::{Account, all_released_and_closed, connections, guest_released_connection, policy_for, url};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Each read may wait this long; a stall must end in `timed-out` after it.
const READ_TIMEOUT_MS: u32 = 300;
/// Bounds the connect and the TLS handshake (with room for a drip on a loaded machine).
const CONNECT_TIMEOUT_MS: u32 = 3_000;
/// 64 bytes 8 ms apart: over half a second in all, longer than the read timeout, yet every gap
/// is far shorter. It must succeed.
const DRIP: Fault = Fault::Drip { bytes: 64, gap: Duration::from_millis(8) };

/// Far past every timeout: a case still running then hangs.
const HUNG: Duration = Duration::from_secs(20);

/// The faults of each row, with their column names.
const FAULTS: [(&str, Fault); 7] = [
    ("cut ↓", Fault::CutServer { after: 5 }),
    ("cut ↑", Fault::CutClient { after: 5 }),
    ("RST", Fault::Reset),
    ("stall", Fault::Stall),
    ("truncate", Fault::Truncate),
    ("flip", Fault::FlipHeaderByte),
    ("drip", DRIP),
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    Greeting,
    AuthSwitch,
    TlsHandshake,
    Query,
    MidResult,
    PreparedExecute,
    NextBatch,
    LocalInfile,
}

const QUERY_SQL: &str = "SELECT 1 AS fault_matrix_query";
const ROWS_SQL: &str = "SELECT seq, REPEAT('x', 100) AS fault_matrix_rows FROM seq_1_to_2000";
const STREAM_SQL: &str = "SELECT seq, REPEAT('x', 100) AS fault_matrix_stream FROM seq_1_to_2000";
const EXECUTE_SQL: &str = "SELECT seq, ? AS fault_matrix_param FROM seq_1_to_50";
const LOAD_SQL: &str = "LOAD DATA LOCAL INFILE 'fault.csv' INTO TABLE fault_infile FIELDS TERMINATED BY ','";

fn command(command: u8, marker: &'static str) -> Opening {
    Opening::Command { command, marker }
}

/// Where each phase's faults strike.
fn phase(stage: Stage) -> Phase {
    let at = |server_after, client_from| Phase { server_after, server_skip: 0, gated: false, client_from };
    match stage {
        Stage::Greeting => at(Opening::Start, Some(Opening::ClientPacket(0))),
        Stage::AuthSwitch => at(Opening::ClientPacket(0), Some(Opening::ClientPacket(1))),
        Stage::TlsHandshake => at(Opening::SslRequest, Some(Opening::SslRequest)),
        Stage::Query => at(command(0x03, "fault_matrix_query"), Some(command(0x03, "fault_matrix_query"))),
        Stage::MidResult => Phase { server_skip: 4096, ..at(command(0x03, "fault_matrix_rows"), None) },
        Stage::PreparedExecute => at(command(0x17, ""), Some(command(0x17, ""))),
        Stage::NextBatch => Phase { server_skip: 2048, gated: true, ..at(command(0x03, "fault_matrix_stream"), None) },
        Stage::LocalInfile => at(Opening::Upload, Some(Opening::Upload)),
    }
}

/// Checks that the fault struck the packet the phase names, so no case passes by missing it.
fn struck_the_phase(stage: Stage, fault: Fault, hit: &Hit) -> Result<(), String> {
    let (seq, first) = (hit.frame[3], hit.frame.get(4).copied());
    let fine = match (stage, fault.on_client()) {
        (Stage::Greeting, false) => !hit.tls && seq == 0 && first == Some(0x0a),
        (Stage::Greeting, true) => !hit.tls && seq == 1,
        (Stage::AuthSwitch, false) => !hit.tls && first == Some(0xFE),
        (Stage::AuthSwitch, true) => !hit.tls && seq == 3,
        (Stage::TlsHandshake, _) => hit.tls && hit.frame[0] == 0x16,
        (Stage::Query, false) => first == Some(1),
        (Stage::Query, true) => first == Some(0x03),
        (Stage::MidResult | Stage::NextBatch, true) => unreachable!("the client sends nothing in this phase"),
        (Stage::MidResult, false) => hit.offset >= 4096 && seq >= 3,
        (Stage::PreparedExecute, false) => first == Some(2),
        (Stage::PreparedExecute, true) => first == Some(0x17),
        (Stage::NextBatch, false) => hit.offset >= 2048 && seq >= 3,
        (Stage::LocalInfile, false) => first == Some(0x00),
        (Stage::LocalInfile, true) => seq == 2,
    };
    if fine { Ok(()) } else { Err(format!("the fault struck the wrong packet: {hit:?}")) }
}

/// Drives the guest through `stage`: `Ok` if everything succeeded (with its data checked), the
/// guest's error otherwise, and the connection if `open` gave one.
async fn drive(
    stage: Stage,
    instance: &mut GuestInstance,
    options: &ConnectOptions,
    proxy: &FaultProxy,
) -> (Option<MysqlHandle>, Result<(), MysqlError>) {
    let conn = match instance.open(options).await.unwrap() {
        Ok(conn) => conn,
        Err(e) => return (None, Err(e)),
    };
    let outcome = match stage {
        Stage::Greeting | Stage::AuthSwitch | Stage::TlsHandshake => {
            instance.query(conn, QUERY_SQL).await.unwrap().map(|sets| assert_eq!(sets[0].rows, [[Value::Int(1)]]))
        }
        Stage::Query => instance.query(conn, QUERY_SQL).await.unwrap().map(|sets| assert_eq!(sets[0].rows.len(), 1)),
        Stage::MidResult => {
            instance.query(conn, ROWS_SQL).await.unwrap().map(|sets| assert_eq!(sets[0].rows.len(), 2000))
        }
        Stage::PreparedExecute => execute_statement(instance, conn).await,
        Stage::NextBatch => next_batches(instance, conn, proxy).await,
        Stage::LocalInfile => {
            instance.query(conn, "CREATE TEMPORARY TABLE fault_infile (id INT, name TEXT)").await.unwrap().unwrap();
            instance.query(conn, LOAD_SQL).await.unwrap().map(|sets| assert_eq!(sets[0].affected_rows, 3))
        }
    };
    (Some(conn), outcome.map_err(|e| e.error))
}

async fn execute_statement(
    instance: &mut GuestInstance,
    conn: MysqlHandle,
) -> Result<(), leashed::bindings::QueryError> {
    let stmt = instance.prepare(conn, EXECUTE_SQL).await.unwrap().expect("prepare before the fault");
    let sets = instance.execute(stmt, &[Value::Int(7)]).await.unwrap()?;
    assert_eq!(sets[0].rows.len(), 50);
    assert_eq!(sets[0].rows[49], [Value::Uint(50), Value::Int(7)]);
    Ok(())
}

/// A first batch before the fault (the proxy holds its gate until then), the rest after it.
async fn next_batches(
    instance: &mut GuestInstance,
    conn: MysqlHandle,
    proxy: &FaultProxy,
) -> Result<(), leashed::bindings::QueryError> {
    let failed = |error| leashed::bindings::QueryError { completed: Vec::new(), error };
    let stream = instance.query_stream(conn, STREAM_SQL).await.unwrap().expect("the stream starts before the fault");
    let first = instance.next_batch(stream, 10).await.unwrap().expect("the first batch comes before the fault");
    assert_eq!(first.len(), 10);
    proxy.release();
    let mut rows = first.len();
    loop {
        let batch = instance.next_batch(stream, 500).await.unwrap().map_err(failed)?;
        if batch.is_empty() {
            break;
        }
        rows += batch.len();
    }
    assert_eq!(rows, 2000);
    instance.close_stream(stream).await.unwrap().map_err(failed)
}

/// The errors a fault may end with: the socket's (reset, timed out, TLS) or the protocol's.
fn is_clear(error: &MysqlError) -> bool {
    matches!(
        error,
        MysqlError::Io(ErrorCode::ConnectionReset | ErrorCode::TimedOut | ErrorCode::Tls(_)) | MysqlError::Protocol(_)
    )
}

/// What each case must end with: the README's table.
fn expected(stage: Stage, fault: Fault) -> &'static str {
    let server_falls_silent = matches!(stage, Stage::Greeting | Stage::AuthSwitch | Stage::LocalInfile);
    match (stage, fault) {
        (_, Fault::Drip { .. }) => "ok",
        (_, Fault::Stall) => "timed out",
        (Stage::TlsHandshake, _) => "tls",
        (_, Fault::CutServer { .. } | Fault::CutClient { .. } | Fault::Reset) => "reset",
        (_, Fault::FlipHeaderByte) => "protocol",
        // The server sends nothing after the packet, so the client waits for the rest of it.
        (_, Fault::Truncate) if server_falls_silent => "timed out",
        // More packets follow: the slip shows in the next header's sequence id, at once.
        (_, Fault::Truncate) => "protocol",
    }
}

fn short(error: &MysqlError) -> String {
    match error {
        MysqlError::Io(ErrorCode::ConnectionReset) => "reset".into(),
        MysqlError::Io(ErrorCode::TimedOut) => "timed out".into(),
        MysqlError::Io(ErrorCode::Tls(_)) => "tls".into(),
        MysqlError::Protocol(_) => "protocol".into(),
        other => format!("{other:?}"),
    }
}

/// Runs one case; `Ok` holds the table cell (what it ended with, and how long it took).
async fn case(stage: Stage, fault: Fault) -> Result<String, String> {
    let server = url(if stage == Stage::AuthSwitch { Account::Ed25519 } else { Account::Native });
    let upstream: SocketAddr = format!("{}:{}", server.host, server.port).parse().unwrap();
    let proxy = FaultProxy::start(upstream, phase(stage), fault).await;
    let via = MysqlUrl { host: "127.0.0.1".into(), port: proxy.addr.port(), ..server };
    let policy = leashed::Policy { capture_guest_stderr: true, ..policy_for(&via) };
    let mut instance = leashed_tests::runtime().instantiate(policy).await.expect("instantiate");
    let csv = LocalFile { name: "fault.csv".into(), contents: b"1,a\n2,b\n3,c\n".to_vec() };
    let options = ConnectOptions {
        // The proxy reads MySQL packets, so only the TLS phase uses TLS.
        tls_mode: if stage == Stage::TlsHandshake { TlsMode::Required } else { TlsMode::Disabled },
        read_timeout_ms: Some(READ_TIMEOUT_MS),
        connect_timeout_ms: Some(CONNECT_TIMEOUT_MS),
        local_infile: vec![csv],
        ..via.connect_options()
    };

    let started = Instant::now();
    let (conn, outcome) = tokio::time::timeout(HUNG, drive(stage, &mut instance, &options, &proxy))
        .await
        .map_err(|_| format!("no answer after {HUNG:?}: the guest hangs"))?;
    let took = started.elapsed().as_millis();
    let hit = proxy.hit().ok_or("the conversation never reached the phase")?;
    struck_the_phase(stage, fault, &hit)?;
    let said = instance.guest_stderr();
    if !said.is_empty() {
        return Err(format!("the guest wrote to stderr: {said}"));
    }

    let cell = match (&outcome, fault) {
        (Ok(()), Fault::Drip { .. }) => {
            instance.close(conn.unwrap()).await.unwrap().map_err(|e| format!("close after the drip: {e:?}"))?;
            format!("{:<9} {took:>5} ms", "ok")
        }
        (Ok(()), _) => return Err("the fault went unnoticed: the call succeeded".into()),
        (Err(error), Fault::Drip { .. }) => return Err(format!("the drip failed: {error:?}")),
        (Err(error), _) => {
            if !is_clear(error) {
                return Err(format!("not an io, protocol or timed-out error: {error:?}"));
            }
            if short(error) != expected(stage, fault) {
                return Err(format!("ended with {error:?}, not {}", expected(stage, fault)));
            }
            let text = leashed::error_text::describe(error, &format!("127.0.0.1:{}", proxy.addr.port()));
            if !text.contains(&format!("127.0.0.1:{}", proxy.addr.port())) {
                return Err(format!("the error does not name the server: {text}"));
            }
            if let Some(conn) = conn {
                let later = instance.ping(conn).await.unwrap();
                if later != Err(MysqlError::Closed) {
                    return Err(format!("the connection was not force-closed: ping gave {later:?}"));
                }
                instance.drop_handle(conn).await.unwrap();
            }
            format!("{:<9} {took:>5} ms  {text}", short(error))
        }
    };
    let [id] = connections(&instance)[..] else { return Err("one connection expected".into()) };
    guest_released_connection(&instance, id)?;
    all_released_and_closed(&instance)?;
    Ok(cell)
}

/// Runs every fault at `stage`, prints what each ended with, and fails listing every case that
/// failed.
async fn row(stage: Stage) {
    let mut lines = vec![format!("fault matrix, {stage:?}:")];
    let mut failures = Vec::new();
    for (name, fault) in FAULTS {
        if fault.on_client() && phase(stage).client_from.is_none() {
            lines.push(format!("  {name:<8}  n/a: the client sends nothing in this phase"));
            continue;
        }
        match case(stage, fault).await {
            Ok(cell) => lines.push(format!("  {name:<8}  {cell}")),
            Err(why) => {
                lines.push(format!("  {name:<8}  FAILED"));
                failures.push(format!("{stage:?} × {name}: {why}"));
            }
        }
    }
    // One print, so the rows of tests running at once do not interleave.
    println!("{}", lines.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn greeting() {
    row(Stage::Greeting).await;
}

#[tokio::test]
async fn auth_switch() {
    row(Stage::AuthSwitch).await;
}

#[tokio::test]
async fn tls_handshake() {
    row(Stage::TlsHandshake).await;
}

#[tokio::test]
async fn query() {
    row(Stage::Query).await;
}

#[tokio::test]
async fn mid_result() {
    row(Stage::MidResult).await;
}

#[tokio::test]
async fn prepared_execute() {
    row(Stage::PreparedExecute).await;
}

#[tokio::test]
async fn row_stream_next_batch() {
    row(Stage::NextBatch).await;
}

#[tokio::test]
async fn local_infile_upload() {
    row(Stage::LocalInfile).await;
}
