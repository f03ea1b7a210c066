//! Session options and connection operations against the live MariaDB: charset, collation,
//! autocommit, sql_mode, init-command and max-allowed-packet at open; server-version,
//! connection-id, select-db, reset, change-user and warnings on an open connection; LOCAL
//! INFILE refused.

use leashed::bindings::{ConnectOptions, MysqlError, Value, Warning};
use leashed_tests::{Account, assert_all_released_and_closed, instance_for, options, url};

fn text(value: &Value) -> String {
    match value {
        Value::Text(t) => t.clone(),
        Value::Int(i) => i.to_string(),
        Value::Uint(u) => u.to_string(),
        other => panic!("not text: {other:?}"),
    }
}

/// Every session option is in effect once `open` returns.
#[tokio::test]
async fn session_options_are_applied_at_open() {
    let url = url(Account::Native);
    let mut instance = instance_for(&url).await;
    let options = ConnectOptions {
        charset: Some("latin1".into()),
        collation: Some("latin1_general_ci".into()),
        autocommit: Some(false),
        sql_mode: Some("STRICT_ALL_TABLES,NO_ZERO_DATE".into()),
        init_command: Some("SET @leashed_init = 'it''s set'".into()),
        ..options(&url)
    };
    let conn = instance.open(&options).await.unwrap().expect("open");
    let sets = instance
        .query(conn, "SELECT @@character_set_client, @@collation_connection, @@autocommit, @@sql_mode, @leashed_init")
        .await
        .unwrap()
        .expect("query");
    let row: Vec<String> = sets[0].rows[0].iter().map(text).collect();
    assert_eq!(row, ["latin1", "latin1_general_ci", "0", "STRICT_ALL_TABLES,NO_ZERO_DATE", "it's set"]);
    instance.close(conn).await.unwrap().unwrap();
    assert_all_released_and_closed(&instance);
}

/// A bad charset name is refused before any socket is lent; a failing init-command fails the
/// open with the server's error and releases everything.
#[tokio::test]
async fn bad_session_options_fail_the_open_cleanly() {
    let url = url(Account::Native);
    let mut instance = instance_for(&url).await;
    let bad_name = ConnectOptions { charset: Some("utf8mb4; DROP TABLE x".into()), ..options(&url) };
    let error = instance.open(&bad_name).await.unwrap().unwrap_err();
    assert!(matches!(&error, MysqlError::Invalid(m) if m.contains("not a valid name")), "{error:?}");
    assert_eq!(instance.audit().summary().lent, 0, "refused before connecting");

    let bad_init = ConnectOptions { init_command: Some("SELECT * FROM no_such_table".into()), ..options(&url) };
    let error = instance.open(&bad_init).await.unwrap().unwrap_err();
    assert!(matches!(&error, MysqlError::Server(e) if e.code == 1146), "{error:?}");
    assert_all_released_and_closed(&instance);
}

/// A packet larger than max-allowed-packet is a protocol error: the connection is force-closed.
#[tokio::test]
async fn packets_over_max_allowed_packet_force_close() {
    let url = url(Account::Native);
    let mut instance = instance_for(&url).await;
    let small = ConnectOptions { max_allowed_packet: Some(4096), ..options(&url) };
    let conn = instance.open(&small).await.unwrap().expect("open");
    let failure = instance.query(conn, "SELECT REPEAT('x', 10000)").await.unwrap().unwrap_err();
    assert!(matches!(&failure.error, MysqlError::Protocol(m) if m.contains("packet")), "{failure:?}");
    let after = instance.query(conn, "SELECT 1").await.unwrap().unwrap_err();
    assert_eq!(after.error, MysqlError::Closed);
    instance.drop_handle(conn).await.unwrap();
    assert_all_released_and_closed(&instance);
}

/// The greeting's facts, select-db, reset and warnings; server errors leave the connection
/// usable.
#[tokio::test]
async fn connection_operations() {
    let url = url(Account::Native);
    let mut instance = instance_for(&url).await;
    let conn = instance.open(&options(&url)).await.unwrap().expect("open");

    assert!(instance.server_version(conn).await.unwrap().contains("MariaDB"));
    let id = instance.connection_id(conn).await.unwrap();
    let sets = instance.query(conn, "SELECT CONNECTION_ID()").await.unwrap().unwrap();
    assert_eq!(sets[0].rows[0][0], Value::Uint(u64::from(id)));

    instance.select_db(conn, "information_schema").await.unwrap().expect("select-db");
    let sets = instance.query(conn, "SELECT DATABASE()").await.unwrap().unwrap();
    assert_eq!(sets[0].rows[0][0], Value::Text("information_schema".into()));
    let missing = instance.select_db(conn, "no_such_db").await.unwrap().unwrap_err();
    assert!(matches!(&missing, MysqlError::Server(e) if e.code == 1044), "no access: {missing:?}");

    instance.query(conn, "SET @kept = 1").await.unwrap().unwrap();
    let stmt = instance.prepare(conn, "SELECT 1").await.unwrap().unwrap();
    instance.reset(conn).await.unwrap().expect("reset");
    let sets = instance.query(conn, "SELECT @kept").await.unwrap().unwrap();
    assert_eq!(sets[0].rows[0][0], Value::Null, "user variables are gone after reset");
    let gone = instance.execute(stmt, &[]).await.unwrap().unwrap_err();
    assert!(matches!(&gone.error, MysqlError::Server(e) if e.code == 1243), "statements are gone: {gone:?}");
    instance.close_statement(stmt).await.unwrap().unwrap();

    let sets = instance.query(conn, "SELECT 1/0").await.unwrap().unwrap();
    assert_eq!(sets[0].warnings, 1);
    let warnings = instance.warnings(conn).await.unwrap().unwrap();
    assert_eq!(warnings, [Warning { level: "Warning".into(), code: 1365, message: "Division by 0".into() }]);

    instance.select_db(conn, url.database.as_deref().unwrap()).await.unwrap().unwrap();
    instance.query(conn, "CREATE OR REPLACE TABLE infile_target (line TEXT)").await.unwrap().unwrap();
    let infile = instance.query(conn, "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE infile_target").await.unwrap();
    let failure = infile.unwrap_err();
    assert!(matches!(&failure.error, MysqlError::Server(e) if e.code == 4166), "{failure:?}");
    instance.ping(conn).await.unwrap().expect("still usable after the refusal");
    instance.query(conn, "DROP TABLE infile_target").await.unwrap().unwrap();

    instance.close(conn).await.unwrap().unwrap();
    assert_all_released_and_closed(&instance);
}

/// With files registered, LOAD DATA LOCAL INFILE loads them by name; a name not registered loads
/// nothing and fails with `invalid`, leaving the connection usable.
#[tokio::test]
async fn local_infile_sends_registered_files_only() {
    let url = url(Account::Native);
    let mut instance = instance_for(&url).await;
    let csv =
        leashed::bindings::LocalFile { name: "people.csv".into(), contents: b"1,ada\n2,grace\n3,edsger\n".to_vec() };
    let conn =
        instance.open(&ConnectOptions { local_infile: vec![csv], ..options(&url) }).await.unwrap().expect("open");
    instance.query(conn, "CREATE OR REPLACE TABLE people (id INT, name TEXT)").await.unwrap().unwrap();
    let load = "LOAD DATA LOCAL INFILE 'people.csv' INTO TABLE people FIELDS TERMINATED BY ','";
    let loaded = instance.query(conn, load).await.unwrap().expect("load");
    assert_eq!(loaded[0].affected_rows, 3);
    let sets = instance.query(conn, "SELECT name FROM people ORDER BY id").await.unwrap().unwrap();
    let names: Vec<String> = sets[0].rows.iter().map(|r| text(&r[0])).collect();
    assert_eq!(names, ["ada", "grace", "edsger"]);

    let unknown = instance.query(conn, "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE people").await.unwrap();
    let failure = unknown.unwrap_err();
    assert!(matches!(&failure.error, MysqlError::Invalid(m) if m.contains("'/etc/passwd'")), "{failure:?}");
    assert_eq!(failure.completed[0].affected_rows, 0, "nothing was loaded");
    let sets = instance.query(conn, "SELECT COUNT(*) FROM people").await.unwrap().expect("usable");
    assert_eq!(sets[0].rows[0][0], Value::Int(3));
    instance.query(conn, "DROP TABLE people").await.unwrap().unwrap();
    instance.close(conn).await.unwrap().unwrap();
    assert_all_released_and_closed(&instance);
}

/// change-user logs in as another account (ed25519 here, through an auth switch); a refused
/// change-user is an auth error and closes the connection.
#[tokio::test]
async fn change_user_switches_accounts_or_closes() {
    let native = url(Account::Native);
    let ed = url(Account::Ed25519);
    let mut instance = instance_for(&native).await;
    let conn = instance.open(&options(&native)).await.unwrap().expect("open");
    let id = instance.connection_id(conn).await.unwrap();

    instance
        .change_user(conn, &ed.user, ed.password.as_deref(), ed.database.as_deref())
        .await
        .unwrap()
        .expect("change-user");
    let sets = instance.query(conn, "SELECT CURRENT_USER(), CONNECTION_ID()").await.unwrap().unwrap();
    assert_eq!(sets[0].rows[0][0], Value::Text(format!("{}@%", ed.user)));
    assert_eq!(sets[0].rows[0][1], Value::Uint(u64::from(id)), "the same session");

    let refused = instance.change_user(conn, &native.user, Some("wrong"), None).await.unwrap().unwrap_err();
    assert!(matches!(&refused, MysqlError::Auth(e) if e.code == 1045), "{refused:?}");
    assert_eq!(instance.ping(conn).await.unwrap().unwrap_err(), MysqlError::Closed);
    instance.drop_handle(conn).await.unwrap();
    assert_all_released_and_closed(&instance);
}
