//! The guest against the live MariaDB: values, the auth plugins it hosts (native, ed25519, and
//! mysql_clear_password through PAM), multi-results, errors.

use leashed::bindings::{MysqlError, Value};
use leashed_tests::{Account, assert_all_released_and_closed, instance_for, options, url};

const TYPES_QUERY: &str = "SELECT 1, 'a', NULL, 1.50, -9223372036854775808, 18446744073709551615, \
     CAST('2024-02-29 23:59:59.123456' AS DATETIME(6)), TIMEDIFF('838:59:59','00:00:00'), x'00ff'";

/// The same row of mixed types comes back exactly for each auth plugin, and closing releases
/// every handle and socket.
async fn row_of_every_kind_round_trips(account: Account) {
    let url = url(account);
    let mut instance = instance_for(&url).await;
    let conn = instance.open(&options(&url)).await.unwrap().expect("login");
    let sets = instance.query(conn, TYPES_QUERY).await.unwrap().expect("query");
    assert_eq!(sets.len(), 1);
    let row = &sets[0].rows[0];
    assert_eq!(row[0], Value::Int(1));
    assert_eq!(row[1], Value::Text("a".into()));
    assert_eq!(row[2], Value::Null);
    assert_eq!(row[3], Value::Decimal("1.50".into()));
    assert_eq!(row[4], Value::Int(i64::MIN));
    assert_eq!(row[5], Value::Uint(u64::MAX));
    let Value::Datetime(dt) = &row[6] else { panic!("not a datetime: {:?}", row[6]) };
    assert_eq!(
        (dt.date.year, dt.date.month, dt.date.day, dt.hour, dt.microsecond, dt.precision),
        (2024, 2, 29, 23, 123_456, 6)
    );
    let Value::Time(t) = &row[7] else { panic!("not a time: {:?}", row[7]) };
    assert_eq!((t.negative, t.hours, t.minutes, t.seconds), (false, 838, 59, 59));
    assert_eq!(row[8], Value::Bytes(vec![0x00, 0xff]));
    assert_eq!(sets[0].columns[5].type_name, "BIGINT UNSIGNED");

    instance.close(conn).await.unwrap().expect("close");
    assert_eq!(instance.audit().summary().to_string(), "audit: 3 handles lent, 3 released, 0 open");
    assert_all_released_and_closed(&instance);
}

/// A call's report names it with its SQL, quoted, and cut after 200 characters: the audit
/// keeps the text and quotes it only when a report asks.
#[tokio::test]
async fn a_query_call_is_named_by_its_sql_in_its_report() {
    let url = url(Account::Native);
    let mut instance = instance_for(&url).await;
    let conn = instance.open(&options(&url)).await.unwrap().expect("login");
    instance.query(conn, "SELECT 'a\tb'").await.unwrap().expect("short query");
    let short = instance.last_call_report().expect("a call was made").to_text();
    assert!(short.contains(r#"`query("SELECT 'a\tb'")`"#), "{short}");
    let comment = "x".repeat(300);
    let long = format!("SELECT 1 /* {comment} */");
    instance.query(conn, &long).await.unwrap().expect("long query");
    let cut = instance.last_call_report().expect("a call was made").to_text();
    let quoted: String = long.chars().take(200).collect();
    assert!(cut.contains(&format!("`query({quoted:?}…)`")), "{cut}");
    assert!(!cut.contains(&long), "the whole statement is not in the name: {cut}");
    instance.close(conn).await.unwrap().expect("close");
    assert_all_released_and_closed(&instance);
}

/// mysql_native_password login and exact values.
#[tokio::test]
async fn native_password_user_gets_exact_values() {
    row_of_every_kind_round_trips(Account::Native).await;
}

/// client_ed25519 login (after an auth switch) and exact values.
#[tokio::test]
async fn ed25519_user_gets_exact_values() {
    row_of_every_kind_round_trips(Account::Ed25519).await;
}

/// The ed25519 account logs in as itself; it is IDENTIFIED VIA ed25519 only, so the login
/// went through client_ed25519.
/// mysql_clear_password against the live server (a PAM account, checked by pam_exec): the
/// password goes in clear only inside TLS. Without TLS the client refuses before sending it;
/// a wrong password is the server's 1045.
#[tokio::test]
async fn clear_password_account_logs_in_over_tls_only() {
    let url = url(Account::Clear);
    let mut instance = instance_for(&url).await;
    let conn = instance.open(&options(&url)).await.unwrap().expect("login over TLS (preferred)");
    assert!(instance.uses_tls(conn).await.unwrap());
    let sets = instance.query(conn, "SELECT CURRENT_USER()").await.unwrap().unwrap();
    assert_eq!(sets[0].rows[0][0], Value::Text("leashed_clear@%".into()));
    instance.close(conn).await.unwrap().unwrap();

    let plain = leashed::bindings::ConnectOptions { tls_mode: leashed::bindings::TlsMode::Disabled, ..options(&url) };
    let refused = instance.open(&plain).await.unwrap().unwrap_err();
    assert!(matches!(&refused, MysqlError::Auth(e) if e.code == 2059), "{refused:?}");
    let wrong = leashed::bindings::ConnectOptions { password: Some("wrong".into()), ..options(&url) };
    let denied = instance.open(&wrong).await.unwrap().unwrap_err();
    assert!(matches!(&denied, MysqlError::Auth(e) if e.code == 1045), "{denied:?}");
    assert_all_released_and_closed(&instance);
}

#[tokio::test]
async fn login_uses_the_accounts_plugin() {
    let url = url(Account::Ed25519);
    let mut instance = instance_for(&url).await;
    let conn = instance.open(&options(&url)).await.unwrap().expect("login");
    let sets = instance.query(conn, "SELECT CURRENT_USER()").await.unwrap().expect("current user");
    assert_eq!(sets[0].rows[0][0], Value::Text("leashed_ed25519@%".into()));
    instance.close(conn).await.unwrap().unwrap();
}

/// `SELECT 1; SELECT 2` gives two result sets, in order.
#[tokio::test]
async fn multi_statement_gives_one_set_per_statement() {
    let url = url(Account::Native);
    let mut instance = instance_for(&url).await;
    let conn = instance.open(&options(&url)).await.unwrap().unwrap();
    let sets = instance.query(conn, "SELECT 1; SELECT 2").await.unwrap().expect("query");
    let firsts: Vec<&Value> = sets.iter().map(|s| &s.rows[0][0]).collect();
    assert_eq!(firsts, [&Value::Int(1), &Value::Int(2)]);
    instance.close(conn).await.unwrap().unwrap();
}

/// When the second statement fails, the first set comes back with the error, and the
/// connection stays usable (a server error is not fatal).
#[tokio::test]
async fn failing_second_statement_keeps_the_first_set() {
    let url = url(Account::Native);
    let mut instance = instance_for(&url).await;
    let conn = instance.open(&options(&url)).await.unwrap().unwrap();
    let failure = instance.query(conn, "SELECT 1; SELECT * FROM no_such_table").await.unwrap().unwrap_err();
    assert_eq!(failure.completed.len(), 1);
    assert_eq!(failure.completed[0].rows[0][0], Value::Int(1));
    let MysqlError::Server(e) = &failure.error else { panic!("expected a server error: {:?}", failure.error) };
    assert_eq!((e.code, e.sql_state.as_str()), (1146, "42S02"));

    let again = instance.query(conn, "SELECT 3").await.unwrap().expect("still usable");
    assert_eq!(again[0].rows[0][0], Value::Int(3));
    instance.ping(conn).await.unwrap().expect("ping");
    instance.close(conn).await.unwrap().unwrap();
    assert_all_released_and_closed(&instance);
}

/// DML reports affected rows, the insert id and the info string.
#[tokio::test]
async fn dml_reports_counters() {
    let url = url(Account::Native);
    let mut instance = instance_for(&url).await;
    let conn = instance.open(&options(&url)).await.unwrap().unwrap();
    let sets = instance
        .query(
            conn,
            "CREATE TEMPORARY TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v INT); \
             INSERT INTO t (v) VALUES (1), (2), (3); UPDATE t SET v = v + 1 WHERE id > 1",
        )
        .await
        .unwrap()
        .expect("dml");
    assert_eq!(sets.len(), 3);
    assert_eq!((sets[1].affected_rows, sets[1].last_insert_id), (3, 1));
    assert_eq!(sets[1].info, "Records: 3  Duplicates: 0  Warnings: 0");
    assert_eq!(sets[2].affected_rows, 2);
    assert_eq!(sets[2].info, "Rows matched: 2  Changed: 2  Warnings: 0");
    instance.close(conn).await.unwrap().unwrap();
}
