//! Streaming results against the live MariaDB: a 1,000,000-row result read in batches within a
//! fixed guest memory, a stream closed early leaving the connection usable, the connection
//! refusing other calls while a stream is open, and statements with no rows or several results.

use leashed::bindings::{MysqlError, Value};
use leashed_tests::{Account, assert_all_released_and_closed, instance_for, options, url};

/// The guest's linear memory may not grow past this while streaming a million rows (it starts
/// around 1 MiB; a buffered million-row result needs well over 100 MiB).
const STREAM_MEMORY_LIMIT: usize = 8 << 20;

#[tokio::test]
async fn a_million_rows_stream_in_bounded_memory() {
    let url = url(Account::Native);
    let mut instance = instance_for(&url).await;
    let conn = instance.open(&options(&url)).await.unwrap().expect("open");
    let stream = instance
        .query_stream(conn, "SELECT seq, CONCAT('row ', seq) FROM seq_1_to_1000000")
        .await
        .unwrap()
        .expect("query-stream");
    let columns = instance.stream_columns(stream).await.unwrap();
    assert_eq!(columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["seq", "CONCAT('row ', seq)"]);

    let (mut rows, mut sum) = (0u64, 0u64);
    loop {
        let batch = instance.next_batch(stream, 1000).await.unwrap().expect("next-batch");
        if batch.is_empty() {
            break;
        }
        for row in &batch {
            let Value::Uint(seq) = row[0] else { panic!("{row:?}") };
            assert_eq!(row[1], Value::Text(format!("row {seq}")));
            sum += seq;
        }
        rows += batch.len() as u64;
    }
    assert_eq!(rows, 1_000_000);
    assert_eq!(sum, 1_000_000 * 1_000_001 / 2, "every row, once, in order of arrival");
    let peak = instance.peak_memory();
    eprintln!("peak guest memory streaming 1,000,000 rows: {peak} bytes");
    assert!(peak < STREAM_MEMORY_LIMIT, "guest memory grew to {peak} bytes");

    instance.close_stream(stream).await.unwrap().expect("closing a finished stream");
    instance.ping(conn).await.unwrap().expect("the connection is free again");
    instance.close(conn).await.unwrap().unwrap();
    assert_all_released_and_closed(&instance);
}

#[tokio::test]
async fn closing_early_drains_and_frees_the_connection() {
    let url = url(Account::Native);
    let mut instance = instance_for(&url).await;
    let conn = instance.open(&options(&url)).await.unwrap().expect("open");
    let stream = instance.query_stream(conn, "SELECT seq FROM seq_1_to_200000").await.unwrap().unwrap();
    let first = instance.next_batch(stream, 10).await.unwrap().unwrap();
    assert_eq!(first.len(), 10);

    let busy = instance.query(conn, "SELECT 1").await.unwrap().unwrap_err();
    assert!(matches!(&busy.error, MysqlError::Invalid(m) if m.contains("row stream is open")), "{busy:?}");
    let busy = instance.ping(conn).await.unwrap().unwrap_err();
    assert!(matches!(busy, MysqlError::Invalid(_)), "{busy:?}");

    instance.close_stream(stream).await.unwrap().expect("close early");
    let sets = instance.query(conn, "SELECT 42").await.unwrap().expect("usable after the drain");
    assert_eq!(sets[0].rows, [[Value::Int(42)]]);
    instance.close(conn).await.unwrap().unwrap();
    assert_all_released_and_closed(&instance);
}

#[tokio::test]
async fn statements_without_rows_and_with_several_results() {
    let url = url(Account::Native);
    let mut instance = instance_for(&url).await;
    let conn = instance.open(&options(&url)).await.unwrap().expect("open");

    let stream = instance.query_stream(conn, "DO 1").await.unwrap().unwrap();
    assert!(instance.stream_columns(stream).await.unwrap().is_empty());
    assert!(instance.next_batch(stream, 10).await.unwrap().unwrap().is_empty());
    instance.close_stream(stream).await.unwrap().unwrap();

    let stream = instance.query_stream(conn, "SELECT 1; SELECT 2").await.unwrap().unwrap();
    assert_eq!(instance.next_batch(stream, 10).await.unwrap().unwrap(), [[Value::Int(1)]]);
    let dropped = instance.next_batch(stream, 10).await.unwrap().unwrap_err();
    assert!(matches!(&dropped, MysqlError::Invalid(m) if m.contains("1 more result set")), "{dropped:?}");
    instance.close_stream(stream).await.unwrap().unwrap();

    let failed = instance.query_stream(conn, "SELECT * FROM no_such_table").await.unwrap().unwrap_err();
    assert!(matches!(&failed, MysqlError::Server(e) if e.code == 1146), "{failed:?}");
    instance.ping(conn).await.unwrap().expect("a refused stream leaves the connection usable");
    instance.close(conn).await.unwrap().unwrap();
    assert_all_released_and_closed(&instance);
}
