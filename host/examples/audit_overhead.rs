//! Benchmark (not a test): SELECT 1 round trips through the leashed guest with the audit's
//! detail (creation-site backtraces, per-operation history) on and off, in alternating rounds,
//! on one process and one server. Prints both rates and the ratio.
//!
//!     scripts/bench-audit            # starts the private MariaDB, runs this, stops it
//!     cargo run --release -p leashed --example audit_overhead -- mysql://u:p@127.0.0.1:3306/db [QUERIES] [ROUNDS]

use leashed::mysql_url::MysqlUrl;
use leashed::{Allowlist, ComponentSource, Policy, Runtime};
use std::time::{Duration, Instant};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(url) = args.get(1).map(|u| MysqlUrl::parse(u).expect("a mysql:// URL")) else {
        eprintln!("usage: audit_overhead mysql://USER:PASSWORD@HOST:PORT/DB [QUERIES] [ROUNDS]");
        std::process::exit(2);
    };
    let queries: u32 = args.get(2).map(|n| n.parse().expect("QUERIES")).unwrap_or(2000);
    let rounds: usize = args.get(3).map(|n| n.parse().expect("ROUNDS")).unwrap_or(7);
    let runtime = Runtime::new(&ComponentSource::Embedded).expect("guest compiles");

    let mut on = Vec::new();
    let mut off = Vec::new();
    for round in 0..=rounds {
        for detail in [true, false] {
            let policy = Policy { audit_detail: detail, ..Policy::allowing(Allowlist::new([url.allow_entry()])) };
            let mut instance = runtime.instantiate(policy).await.expect("instantiate");
            let conn = instance.open(&url.connect_options()).await.unwrap().expect("login");
            let started = Instant::now();
            for _ in 0..queries {
                instance.query(conn, "SELECT 1").await.unwrap().expect("SELECT 1");
            }
            let elapsed = started.elapsed();
            instance.close(conn).await.unwrap().unwrap();
            assert_eq!(instance.audit().summary().open, 0);
            // Round 0 warms up caches and the server; it is not counted.
            if round > 0 {
                if detail { on.push(elapsed) } else { off.push(elapsed) }
            }
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (on, off) = (median(&mut on), median(&mut off));
    let per_query = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(queries);
    println!("SELECT 1 round trips, {queries} per round, median of {rounds} rounds:");
    println!("  audit detail on:  {:.1} us/query", per_query(on));
    println!("  audit detail off: {:.1} us/query", per_query(off));
    println!(
        "  ratio on/off: {:.3} ({:+.1} % overhead; target: at most +3 %)",
        on.as_secs_f64() / off.as_secs_f64(),
        (on.as_secs_f64() / off.as_secs_f64() - 1.0) * 100.0
    );
}
