//! Measurement (not a test): the guest's peak linear memory while streaming a 1,000,000-row
//! result in batches, next to a buffered `query` of a tenth of it, on one server.
//!
//!     scripts/with-mariadb cargo run --release -p leashed --example stream_memory
//!     cargo run --release -p leashed --example stream_memory -- mysql://u:p@127.0.0.1:3306/db [ROWS] [BATCH]

use leashed::mysql_url::MysqlUrl;
use leashed::{Allowlist, ComponentSource, Policy, Runtime};
use std::time::Instant;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).cloned().or_else(|| std::env::var("LEASHED_TEST_NATIVE_URL").ok());
    let Some(url) = url.map(|u| MysqlUrl::parse(&u).expect("a mysql:// URL")) else {
        eprintln!("usage: stream_memory mysql://USER:PASSWORD@HOST:PORT/DB [ROWS] [BATCH]");
        std::process::exit(2);
    };
    let rows: u64 = args.get(2).map(|n| n.parse().expect("ROWS")).unwrap_or(1_000_000);
    let batch: u32 = args.get(3).map(|n| n.parse().expect("BATCH")).unwrap_or(1000);
    let runtime = Runtime::new(&ComponentSource::Embedded).expect("guest compiles");
    let sql = |n: u64| format!("SELECT seq, CONCAT('row ', seq) FROM seq_1_to_{n}");
    let mib = |bytes: usize| bytes as f64 / (1024.0 * 1024.0);

    let policy = || Policy::allowing(Allowlist::new([url.allow_entry()]));
    let mut instance = runtime.instantiate(policy()).await.expect("instantiate");
    let conn = instance.open(&url.connect_options()).await.unwrap().expect("login");
    let started = Instant::now();
    let stream = instance.query_stream(conn, &sql(rows)).await.unwrap().expect("query-stream");
    let mut seen = 0u64;
    loop {
        let got = instance.next_batch(stream, batch).await.unwrap().expect("next-batch");
        if got.is_empty() {
            break;
        }
        seen += got.len() as u64;
    }
    instance.close_stream(stream).await.unwrap().unwrap();
    let elapsed = started.elapsed();
    instance.close(conn).await.unwrap().unwrap();
    assert_eq!(seen, rows);
    println!(
        "query-stream, {rows} rows in batches of {batch}: peak guest memory {:.1} MiB, {:.2} s",
        mib(instance.peak_memory()),
        elapsed.as_secs_f64()
    );

    let buffered_rows = rows / 10;
    let mut instance = runtime.instantiate(policy()).await.expect("instantiate");
    let conn = instance.open(&url.connect_options()).await.unwrap().expect("login");
    let sets = instance.query(conn, &sql(buffered_rows)).await.unwrap().expect("query");
    assert_eq!(sets[0].rows.len() as u64, buffered_rows);
    instance.close(conn).await.unwrap().unwrap();
    println!("query (buffered), {buffered_rows} rows: peak guest memory {:.1} MiB", mib(instance.peak_memory()));
}
