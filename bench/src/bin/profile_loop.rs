//! A tool for profiling (not a test, not a comparison): runs one leashed workload in a tight
//! loop for a while and prints its mean time per operation, so `perf record` sees nothing else.
//!
//!     LEASHED_PERF_MAP=1 perf record -g -o /tmp/perf.data -- \
//!         target/release/profile_loop mysql://u:p@127.0.0.1:3306/db select1 10
//!     perf report -i /tmp/perf.data --no-children --sort dso,sym
//!
//! Workloads: `select1` (round trips on one connection), `call` (an export call that does no
//! I/O, `connection-id`: what entering and leaving the guest costs), `fresh` (new instance + connect +
//! SELECT 1 + close), `resume` (the same with session reuse), `instantiate`, `rows` (200k rows,
//! buffered), `native-select1` (the native `mysql` crate's round trips, for comparison) and
//! `async-select1` (mysql_async's, on this tokio runtime: what async I/O alone costs).

use leashed::bindings::{ConnectOptions, TlsMode};
use leashed::mysql_url::MysqlUrl;
use leashed::net::parking::{ParkingLimits, ParkingLot, SessionReuse};
use leashed::{Allowlist, ComponentSource, Policy, Runtime};
use mysql::prelude::Queryable;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WORKLOADS: &str =
    "select1, call, fresh, resume, instantiate, rows, native-select1 (the mysql crate) or async-select1 (mysql_async)";

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(workload)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: profile_loop mysql://USER:PASSWORD@HOST:PORT/DB WORKLOAD [SECONDS]\n  WORKLOAD: {WORKLOADS}");
        std::process::exit(2);
    };
    let url = MysqlUrl::parse(url).unwrap_or_else(|e| panic!("{e}"));
    let seconds: u64 = args.get(3).map(|s| s.parse().expect("SECONDS is a number")).unwrap_or(10);
    // LEASHED_GUEST_COMPONENT names another build of the guest (e.g. an older one, to compare).
    let guest = std::env::var_os("LEASHED_GUEST_COMPONENT")
        .map_or(ComponentSource::Embedded, |f| ComponentSource::File(f.into()));
    let runtime = Runtime::new(&guest).expect("the guest compiles");
    let options = ConnectOptions { tls_mode: TlsMode::Disabled, ..url.connect_options() };
    let policy = Policy::allowing(Allowlist::new([url.allow_entry()]));
    let lot = Arc::new(ParkingLot::new(ParkingLimits::default()));
    let reusing = Policy { reuse: Some(SessionReuse { lot, scope: "profile".into() }), ..policy.clone() };

    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut ops = 0u64;
    match workload.as_str() {
        "select1" | "rows" => {
            let sql = if workload == "rows" {
                "SELECT seq, seq * 2, CONCAT('row-', seq) FROM seq_1_to_200000"
            } else {
                "SELECT 1"
            };
            let mut instance = runtime.instantiate(policy).await.expect("instantiate");
            let conn = instance.open(&options).await.unwrap().expect("login");
            while Instant::now() < until {
                instance.query(conn, sql).await.unwrap().expect("query");
                ops += 1;
            }
            instance.close(conn).await.unwrap().unwrap();
        }
        "fresh" | "resume" => {
            let policy = if workload == "resume" { reusing } else { policy };
            while Instant::now() < until {
                let mut instance = runtime.instantiate(policy.clone()).await.expect("instantiate");
                let conn = instance.open(&options).await.unwrap().expect("login");
                instance.query(conn, "SELECT 1").await.unwrap().expect("SELECT 1");
                instance.close(conn).await.unwrap().unwrap();
                ops += 1;
            }
        }
        "native-select1" => {
            let mut conn = mysql::Conn::new(leashed_bench::native::native_opts(&url)).expect("native login");
            while Instant::now() < until {
                let one: Option<u8> = conn.query_first("SELECT 1").unwrap();
                assert_eq!(one, Some(1));
                ops += 1;
            }
        }
        "async-select1" => {
            // The same URL, as items_native reads it, kept on TCP as leashed is.
            let opts = mysql_async::Opts::from_url(&args[1]).expect("a mysql_async URL");
            let opts = mysql_async::OptsBuilder::from_opts(opts).prefer_socket(false).tcp_nodelay(true);
            let mut conn = mysql_async::Conn::new(opts).await.expect("async login");
            use mysql_async::prelude::Queryable as _;
            while Instant::now() < until {
                let one: Option<u8> = conn.query_first("SELECT 1").await.unwrap();
                assert_eq!(one, Some(1));
                ops += 1;
            }
        }
        "call" => {
            let mut instance = runtime.instantiate(policy).await.expect("instantiate");
            let conn = instance.open(&options).await.unwrap().expect("login");
            while Instant::now() < until {
                instance.connection_id(conn).await.unwrap();
                ops += 1;
            }
            instance.close(conn).await.unwrap().unwrap();
        }
        "instantiate" => {
            while Instant::now() < until {
                drop(runtime.instantiate(policy.clone()).await.expect("instantiate"));
                ops += 1;
            }
        }
        other => {
            eprintln!("profile_loop: no workload {other:?}; choose {WORKLOADS}");
            std::process::exit(2);
        }
    }
    let per_op = started.elapsed().as_secs_f64() * 1e6 / ops as f64;
    println!("{workload}: {ops} operations, {per_op:.1} us each");
}
