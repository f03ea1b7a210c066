//! Prepared statements against the live MariaDB: typed parameters (NULL and long data included)
//! written into typed columns and read back, reuse of one statement, errors that leave the
//! connection usable, and a statement that outlives its connection.

use leashed::bindings::{Date, Datetime, MysqlError, Time, Value};
use leashed_tests::{Account, assert_all_released_and_closed, instance_for, options, url};

const TABLE: &str = "CREATE OR REPLACE TABLE prepared_params (
    id INT AUTO_INCREMENT PRIMARY KEY, n INT NULL, i BIGINT, u BIGINT UNSIGNED, d DOUBLE, f FLOAT,
    dec10 DECIMAL(10,2), t VARCHAR(50), b VARBINARY(10), da DATE, dt DATETIME(6), tm TIME(6), big LONGBLOB
) CHARACTER SET utf8mb4";

const INSERT: &str = "INSERT INTO prepared_params (n, i, u, d, f, dec10, t, b, da, dt, tm, big) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

fn datetime() -> Datetime {
    Datetime {
        date: Date { year: 2024, month: 2, day: 29 },
        hour: 23,
        minute: 59,
        second: 58,
        microsecond: 123_456,
        precision: 6,
    }
}

fn time() -> Time {
    Time { negative: true, hours: 26, minutes: 3, seconds: 4, microseconds: 500_000, precision: 6 }
}

/// One INSERT statement executed twice: once with a value of every kind, once with NULLs and a
/// 300 KB parameter streamed as long data in three pieces. Read back with the text protocol,
/// every value is what was sent.
#[tokio::test]
async fn typed_params_and_long_data_round_trip_through_one_statement() {
    let url = url(Account::Native);
    let mut instance = instance_for(&url).await;
    let conn = instance.open(&options(&url)).await.unwrap().expect("login");
    instance.query(conn, TABLE).await.unwrap().expect("create");
    let stmt = instance.prepare(conn, INSERT).await.unwrap().expect("prepare");

    let first = [
        Value::Int(-7),
        Value::Int(i64::MIN),
        Value::Uint(u64::MAX),
        Value::Double(0.1 + 0.2),
        Value::Float(1.5),
        Value::Decimal("-12345678.90".into()),
        Value::Text("héllo 🌍".into()),
        Value::Bytes(vec![0x00, 0xff, 0x10]),
        Value::Date(Date { year: 2024, month: 2, day: 29 }),
        Value::Datetime(datetime()),
        Value::Time(time()),
        Value::Bytes(b"small".to_vec()),
    ];
    let inserted = instance.execute(stmt, &first).await.unwrap().expect("first execute");
    assert_eq!((inserted[0].affected_rows, inserted[0].last_insert_id), (1, 1));

    let piece: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    for _ in 0..3 {
        instance.send_long_data(stmt, 11, &piece).await.unwrap().expect("long data");
    }
    let mut second = vec![Value::Null; 12];
    second[1] = Value::Int(1); // `i` and `u`: any value; the rest NULL
    second[2] = Value::Uint(2);
    let inserted = instance.execute(stmt, &second).await.unwrap().expect("second execute");
    assert_eq!(inserted[0].last_insert_id, 2);
    instance.close_statement(stmt).await.unwrap().expect("close");

    let rows = instance
        .query(conn, "SELECT n, i, u, d, f, dec10, t, b, da, dt, tm, big FROM prepared_params ORDER BY id")
        .await
        .unwrap()
        .expect("read back")
        .remove(0)
        .rows;
    let mut expected_first = first.to_vec();
    expected_first[11] = Value::Bytes(b"small".to_vec());
    assert_eq!(rows[0], expected_first);
    let mut long = piece.clone();
    long.extend_from_slice(&piece);
    long.extend_from_slice(&piece);
    assert_eq!(rows[1][11], Value::Bytes(long), "the three pieces, concatenated");
    assert_eq!(rows[1][0], Value::Null);
    assert_eq!(rows[1][9], Value::Null);

    instance.query(conn, "DROP TABLE prepared_params").await.unwrap().expect("drop");
    instance.close(conn).await.unwrap().unwrap();
    assert_all_released_and_closed(&instance);
}

/// Mistakes the client catches (wrong parameter count, a parameter index out of range) and a
/// statement the server rejects leave the connection usable; they are not force-closes.
#[tokio::test]
async fn refused_statements_leave_the_connection_usable() {
    let url = url(Account::Native);
    let mut instance = instance_for(&url).await;
    let conn = instance.open(&options(&url)).await.unwrap().expect("login");

    let syntax = instance.prepare(conn, "SELEC ?").await.unwrap().unwrap_err();
    assert!(matches!(syntax, MysqlError::Server(ref e) if e.code == 1064), "{syntax:?}");

    let stmt = instance.prepare(conn, "SELECT ? + ?").await.unwrap().expect("prepare");
    let wrong = instance.execute(stmt, &[Value::Int(1)]).await.unwrap().unwrap_err();
    assert!(matches!(wrong.error, MysqlError::Invalid(ref m) if m.contains("2 parameters, but 1")), "{wrong:?}");
    let out_of_range = instance.send_long_data(stmt, 2, b"x").await.unwrap().unwrap_err();
    assert!(matches!(out_of_range, MysqlError::Invalid(_)), "{out_of_range:?}");

    let sum = instance.execute(stmt, &[Value::Int(40), Value::Int(2)]).await.unwrap().expect("still usable");
    assert_eq!(sum[0].rows, [[Value::Int(42)]]);
    instance.ping(conn).await.unwrap().expect("ping");
    instance.close_statement(stmt).await.unwrap().unwrap();
    instance.close(conn).await.unwrap().unwrap();
    assert_all_released_and_closed(&instance);
}

/// A statement whose connection was closed answers `closed`, and closing it then succeeds.
#[tokio::test]
async fn a_statement_outliving_its_connection_is_closed() {
    let url = url(Account::Native);
    let mut instance = instance_for(&url).await;
    let conn = instance.open(&options(&url)).await.unwrap().expect("login");
    let stmt = instance.prepare(conn, "SELECT 1").await.unwrap().expect("prepare");
    instance.close(conn).await.unwrap().unwrap();
    let failure = instance.execute(stmt, &[]).await.unwrap().unwrap_err();
    assert!(matches!(failure.error, MysqlError::Closed), "{failure:?}");
    instance.close_statement(stmt).await.unwrap().expect("closing a statement of a closed connection");
    assert_all_released_and_closed(&instance);
}
