//! Value fidelity: a table with every MariaDB column type, in its extremes, with zero dates,
//! fractions, several character sets, and NULL in each column, read three ways: through the text
//! protocol (`query`), through the binary protocol (a prepared statement), and by the `mariadb`
//! command-line client. All three must agree on every cell.
//!
//! The one documented difference is inside the API values of FLOAT columns: the binary protocol
//! carries the f32 exactly, the text protocol only the server's 6 significant digits. Rendered,
//! both read as the server's text, so the JSON documents are equal.

use leashed::bindings::{ResultSet, Value};
use leashed::mysql_url::MysqlUrl;
use leashed::render::json::to_json;
use leashed::render::value_text;
use leashed_tests::{Account, assert_all_released_and_closed, instance_for, options, url};
use std::process::Command;

const TABLE: &str = "CREATE OR REPLACE TABLE all_types (
    id INT PRIMARY KEY,
    ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
    mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
    dec65 DECIMAL(65,30), f FLOAT, f73 FLOAT(7,3), d DOUBLE,
    da DATE, tm TIME, tm3 TIME(3), tm6 TIME(6),
    dt0 DATETIME, dt1 DATETIME(1), dt2 DATETIME(2), dt3 DATETIME(3), dt4 DATETIME(4), dt5 DATETIME(5), dt6 DATETIME(6),
    ts TIMESTAMP NULL DEFAULT NULL, ts6 TIMESTAMP(6) NULL DEFAULT NULL, y YEAR,
    b1 BIT(1), b10 BIT(10), b64 BIT(64),
    e ENUM('a','b','é'), st SET('x','y','z'),
    c CHAR(10), vc VARCHAR(100), tx TEXT,
    cl CHAR(10) CHARACTER SET latin1, vcl VARCHAR(100) CHARACTER SET latin1, txl TEXT CHARACTER SET latin1,
    bn BINARY(4), vb VARBINARY(100), bl BLOB, j JSON, g GEOMETRY
) CHARACTER SET utf8mb4";

/// Rows: the minimums, the maximums, everyday values with fractions and non-ASCII text, zero
/// dates, and NULL in every column.
const ROWS: &str = "SET SESSION sql_mode = '', time_zone = '+00:00';
INSERT INTO all_types VALUES
(1, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,
 '-99999999999999999999999999999999999.999999999999999999999999999999', -3.40282e38, -9999.999, -1.7976931348623157e308,
 '1000-01-01', '-838:59:59', '-838:59:59.000', '-838:59:58.999999',
 '1000-01-01 00:00:00', '1000-01-01 00:00:00.0', '1000-01-01 00:00:00.00', '1000-01-01 00:00:00.000',
 '1000-01-01 00:00:00.0000', '1000-01-01 00:00:00.00000', '1000-01-01 00:00:00.000000',
 '1970-01-01 00:00:01', '1970-01-01 00:00:01.000000', 1901,
 b'0', b'0', b'0', 'a', '', '', '', '', '', '', '', x'00000000', x'', x'', '[]', ST_GeomFromText('POINT(0 0)')),
(2, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615,
 '99999999999999999999999999999999999.999999999999999999999999999999', 3.40282e38, 9999.999, 1.7976931348623157e308,
 '9999-12-31', '838:59:59', '838:59:59.000', '838:59:58.999999',
 '9999-12-31 23:59:59', '9999-12-31 23:59:59.9', '9999-12-31 23:59:59.99', '9999-12-31 23:59:59.999',
 '9999-12-31 23:59:59.9999', '9999-12-31 23:59:59.99999', '9999-12-31 23:59:59.999999',
 '2038-01-19 03:14:07', '2038-01-19 03:14:07.999999', 2155,
 b'1', b'1111111111', b'1111111111111111111111111111111111111111111111111111111111111111', 'é', 'x,y,z',
 'héllo 🌍', 'ünïcödé ✓ 漢字', REPEAT('long text ', 50), 'café', 'ßtraße', 'latin1 ÿ',
 x'00ff7f80', x'000102fffe', x'deadbeef00', '{\"a\": [1, 2.5, \"x\"], \"b\": null}',
 ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 10,0 0))')),
(3, -1, 200, -2, 60000, 0, 1, -7, 7, 42, 9223372036854775808,
 '0.000000000000000000000000000001', 3.1415927, 3.1415927, 0.30000000000000004,
 '2024-02-29', '-26:03:04', '100:00:00.5', '-00:00:00.000001',
 '2024-02-29 23:59:59', '2024-02-29 23:59:59.1', '2024-02-29 23:59:59.12', '2024-02-29 23:59:59.123',
 '2024-02-29 23:59:59.1234', '2024-02-29 23:59:59.12345', '2024-02-29 23:59:59.123456',
 '2024-02-29 12:00:00', '2024-02-29 12:00:00.5', 2024,
 b'1', b'101', b'1000000000000000000000000000000000000000000000000000000000000001', 'b', 'y',
 'a', 'b', 'c', 'd', 'e', 'f', x'61626364', x'c3a9', x'ffd8ffe0', '\"just a string\"',
 ST_GeomFromText('LINESTRING(1 2,3 4.5)')),
(4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '0', 0, 0, 0,
 '0000-00-00', '00:00:00', '00:00:00.000', '00:00:00.000000',
 '0000-00-00 00:00:00', '0000-00-00 00:00:00.0', '0000-00-00 00:00:00.00', '0000-00-00 00:00:00.000',
 '0000-00-00 00:00:00.0000', '0000-00-00 00:00:00.00000', '0000-00-00 00:00:00.000000',
 '0000-00-00 00:00:00', '0000-00-00 00:00:00.000000', 0,
 b'0', b'0', b'0', 'a', '', 'zero', 'zero', 'zero', 'zero', 'zero', 'zero', x'00', x'00', x'00', '0',
 ST_GeomFromText('POINT(-1.5 1e10)')),
(5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)";

/// Columns the CLI is asked for as HEX(), because they hold bytes.
const BINARY_COLUMNS: [&str; 7] = ["b1", "b10", "b64", "bn", "vb", "bl", "g"];

const SELECT: &str = "SELECT * FROM all_types ORDER BY id";

/// The same rows, as the `mariadb` client prints them (`--batch --raw`: tab-separated, NULL as
/// `NULL`), with byte columns as HEX().
fn cli_rows(url: &MysqlUrl, columns: &[String]) -> Vec<Vec<String>> {
    let list: Vec<String> = columns
        .iter()
        .map(|c| {
            if BINARY_COLUMNS.contains(&c.as_str()) { format!("HEX(CAST(`{c}` AS BINARY))") } else { format!("`{c}`") }
        })
        .collect();
    let sql = format!("SET time_zone = '+00:00'; SELECT {} FROM all_types ORDER BY id", list.join(", "));
    let out = Command::new("mariadb")
        .args(["--no-defaults", "--protocol=tcp", "--batch", "--raw", "--skip-column-names"])
        .arg(format!("--host={}", url.host))
        .arg(format!("--port={}", url.port))
        .arg(format!("--user={}", url.user))
        .arg(format!("--password={}", url.password.as_deref().unwrap_or_default()))
        .arg(format!("--database={}", url.database.as_deref().unwrap_or_default()))
        .arg("--default-character-set=utf8mb4")
        .args(["-e", &sql])
        .output()
        .expect("the mariadb client runs (scripts/mariadb installs it)");
    assert!(out.status.success(), "mariadb client failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("utf8mb4 output");
    text.lines().map(|line| line.split('\t').map(str::to_string).collect()).collect()
}

fn is_float_column(set: &ResultSet, index: usize) -> bool {
    set.columns[index].type_name == "FLOAT"
}

/// Every type, both protocols and the command-line client agree on every cell.
#[tokio::test]
async fn every_type_reads_the_same_through_both_protocols_and_the_cli() {
    let url = url(Account::Native);
    let mut instance = instance_for(&url).await;
    let conn = instance.open(&options(&url)).await.unwrap().expect("login");
    instance.query(conn, TABLE).await.unwrap().expect("create the table");
    instance.query(conn, ROWS).await.unwrap().expect("insert the rows");

    let text = instance.query(conn, SELECT).await.unwrap().expect("text protocol");
    let stmt = instance.prepare(conn, SELECT).await.unwrap().expect("prepare");
    let binary = instance.execute(stmt, &[]).await.unwrap().expect("binary protocol");
    instance.close_statement(stmt).await.unwrap().unwrap();
    let (text, binary) = (&text[0], &binary[0]);
    assert_eq!(text.rows.len(), 5);
    assert_eq!(text.columns, binary.columns, "both protocols describe the columns alike");

    // 1. Text and binary: the same values (FLOAT: the same once rounded as the server writes it).
    for (r, (t_row, b_row)) in text.rows.iter().zip(&binary.rows).enumerate() {
        for (c, (t, b)) in t_row.iter().zip(b_row).enumerate() {
            let column = &text.columns[c];
            if is_float_column(text, c) {
                assert_eq!(value_text(t, column), value_text(b, column), "row {r}, FLOAT column {}", column.name);
            } else {
                assert_eq!(t, b, "row {r}, column {} ({})", column.name, column.type_name);
            }
        }
    }
    assert_eq!(to_json(std::slice::from_ref(text)), to_json(std::slice::from_ref(binary)), "the same JSON");

    // 2. Against the command-line client, cell by cell.
    let names: Vec<String> = text.columns.iter().map(|c| c.name.clone()).collect();
    let cli = cli_rows(&url, &names);
    assert_eq!(cli.len(), text.rows.len(), "{cli:?}");
    for (r, (row, cli_row)) in text.rows.iter().zip(&cli).enumerate() {
        assert_eq!(cli_row.len(), row.len(), "row {r}: {cli_row:?}");
        for (c, (value, printed)) in row.iter().zip(cli_row).enumerate() {
            let column = &text.columns[c];
            let ours = match value_text(value, column) {
                None => "NULL".to_string(),
                Some(hex) if BINARY_COLUMNS.contains(&column.name.as_str()) => hex.trim_start_matches("0x").to_string(),
                Some(text) => text,
            };
            assert_eq!(&ours, printed, "row {r}, column {} ({})", column.name, column.type_name);
        }
    }

    // 3. Spot checks that the comparison above is about the right things.
    let at = |set: &ResultSet, row: usize, name: &str| {
        let index = set.columns.iter().position(|c| c.name == name).expect("column exists");
        set.rows[row][index].clone()
    };
    assert_eq!(at(text, 1, "biu"), Value::Uint(u64::MAX));
    assert_eq!(
        at(text, 1, "dec65"),
        Value::Decimal("99999999999999999999999999999999999.999999999999999999999999999999".into())
    );
    assert_eq!(at(text, 1, "c"), Value::Text("héllo 🌍".into()));
    assert_eq!(at(text, 1, "vcl"), Value::Text("ßtraße".into()), "latin1 arrives as UTF-8");
    assert_eq!(at(text, 1, "bn"), Value::Bytes(vec![0x00, 0xff, 0x7f, 0x80]));
    assert_eq!(at(binary, 2, "f"), Value::Float(3.1415927), "binary FLOAT keeps its f32");
    assert_eq!(at(text, 2, "f"), Value::Float(3.14159), "text FLOAT has the server's 6 digits");
    assert_eq!(value_text(&at(text, 3, "y"), &text.columns[28]).as_deref(), Some("0000"), "ZEROFILL YEAR");
    assert!(text.rows[4][1..].iter().all(|v| *v == Value::Null), "row 5 is NULL in every column");

    instance.query(conn, "DROP TABLE all_types").await.unwrap().expect("drop");
    instance.close(conn).await.unwrap().unwrap();
    assert_all_released_and_closed(&instance);
}
