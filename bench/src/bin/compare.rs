//! Benchmark (not a test): leashed against the native Rust `mysql` crate (27, the baseline of
//! every ratio) and PyMySQL, natively and in a component on leashed's sockets, on the same
//! server in the same run. Each workload runs in rounds;
//! a round runs one block of every client, in rotating order. Each row prints each client's
//! median time per operation and its ratio to native with a 95 % bootstrap interval.
//!
//!     scripts/bench            # starts the private MariaDB, builds, runs this, stops it
//!     cargo run --release -p leashed-bench --bin compare -- mysql://u:p@127.0.0.1:3306/db [ROUNDS]
//!
//! The CLI and `leashed serve` workloads run the `leashed` binary next to this one
//! ($LEASHED_BIN to name another) and the items-rust plugin ($LEASHED_PLUGIN); PyMySQL in a
//! component is the one bench/build.rs built ($LEASHED_PYMYSQL_COMPONENT to name another).

use leashed::bindings::{ConnectOptions, TlsMode};
use leashed::mysql_url::MysqlUrl;
use leashed::net::parking::{ParkingLimits, ParkingLot, SessionReuse};
use leashed::{Allowlist, ComponentSource, GuestInstance, MysqlHandle, Policy, Runtime};
use leashed_bench::http::KeepAlive;
use leashed_bench::pymysql::PyMysql;
use leashed_bench::pymysql_wasm::PyMysqlWasm;
use leashed_bench::rounds::Samples;
use mysql::prelude::Queryable;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROWS_SQL: &str = "SELECT seq, seq * 2, CONCAT('row-', seq) FROM seq_1_to_200000";

struct Bench {
    url: MysqlUrl,
    text_url: String,
    runtime: Runtime,
    rounds: usize,
    python: Option<PyMysql>,
    /// PyMySQL in a component, on sockets this host lends, under the leashed column's policy.
    python_wasm: Option<PyMysqlWasm>,
}

/// The clients of the workloads PyMySQL runs, in their column order.
const WITH_PYTHON: [&str; 4] = ["native", "leashed", "PyMySQL", "PyMySQL on leashed"];

/// A workload both PyMySQL clients run.
#[derive(Clone, Copy)]
enum PyWorkload {
    Select1,
    Rows,
    Connect,
}

/// The workloads, in the order they run; LEASHED_BENCH_ONLY picks some of them.
const WORKLOADS: [&str; 7] = ["select1", "rows", "connect", "fresh", "instantiate", "cli", "serve"];

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(text_url) = args.get(1).cloned() else {
        eprintln!(
            "usage: compare mysql://USER:PASSWORD@HOST:PORT/DB [ROUNDS]\n  LEASHED_BENCH_ONLY=W1,W2 runs only those of {}",
            WORKLOADS.join(", ")
        );
        std::process::exit(2);
    };
    let url = MysqlUrl::parse(&text_url).unwrap_or_else(|e| panic!("{e}"));
    let rounds = args.get(2).map(|n| n.parse().expect("ROUNDS is a number")).unwrap_or(30);
    // LEASHED_BENCH_ONLY=serve,select1 runs only those workloads (for a quick look at one row).
    let only = std::env::var("LEASHED_BENCH_ONLY").unwrap_or_default();
    if let Some(unknown) = only.split(',').map(str::trim).find(|w| !w.is_empty() && !WORKLOADS.contains(w)) {
        eprintln!("compare: LEASHED_BENCH_ONLY names {unknown:?}, which is not a workload ({})", WORKLOADS.join(", "));
        std::process::exit(2);
    }
    let runtime = Runtime::new(&ComponentSource::Embedded).expect("the guest compiles");
    let python = PyMysql::start(
        &url.host,
        url.port,
        &url.user,
        url.password.as_deref().unwrap_or(""),
        url.database.as_deref().unwrap_or(""),
    )
    .map_err(|why| println!("note: {why}"))
    .ok();
    let policy = Policy::allowing(Allowlist::new([url.allow_entry()]));
    let python_wasm = PyMysqlWasm::start(policy, &text_url).await.map_err(|why| println!("note: {why}")).ok();
    let mut bench = Bench { url, text_url, runtime, rounds, python, python_wasm };
    println!("{rounds} rounds per workload; each client's median per operation, and its ratio to native");
    let runs = |name: &str| only.is_empty() || only.split(',').any(|w| w.trim() == name);
    if runs("select1") {
        bench.select_1().await;
    }
    if runs("rows") {
        bench.rows_buffered().await;
    }
    if runs("connect") {
        bench.connect_auth_close().await;
    }
    if runs("fresh") {
        bench.fresh_instance_request().await;
    }
    if runs("instantiate") {
        bench.instantiate_alone().await;
    }
    if runs("cli") {
        bench.cli_one_shot();
    }
    if runs("serve") {
        bench.serve_request();
    }
    if let Some(wasm) = bench.python_wasm.as_mut() {
        wasm.close().await;
    }
}

impl Bench {
    fn native_opts(&self) -> mysql::Opts {
        leashed_bench::native::native_opts(&self.url)
    }

    /// The leashed column's policy (PyMySQL on leashed runs under the same one).
    fn policy(&self) -> Policy {
        Policy::allowing(Allowlist::new([self.url.allow_entry()]))
    }

    /// One block of `ops` operations of a PyMySQL client (2: in its own process, 3: in the
    /// component), timed; `None` when that client is missing.
    async fn python_block(&mut self, which: usize, workload: PyWorkload, ops: u32) -> Option<Duration> {
        let (name, sql, fetches) = match workload {
            PyWorkload::Select1 => ("select1", "", 1),
            PyWorkload::Rows => ("rows", ROWS_SQL, 200_000),
            PyWorkload::Connect => ("connect", "", 0),
        };
        if which == 2 {
            let py = self.python.as_mut()?;
            return Some(match workload {
                PyWorkload::Rows => py.block(&format!("query {ROWS_SQL}"), ops),
                _ => py.block(name, ops),
            });
        }
        let (took, fetched) = self.python_wasm.as_mut()?.block(name, ops, sql).await;
        assert_eq!(fetched, fetches, "PyMySQL on leashed, {name}: rows fetched");
        Some(took)
    }

    fn options(&self) -> ConnectOptions {
        ConnectOptions { tls_mode: TlsMode::Disabled, ..self.url.connect_options() }
    }

    async fn leashed_session(&self) -> (GuestInstance, MysqlHandle) {
        let mut instance = self.runtime.instantiate(self.policy()).await.expect("instantiate");
        let conn = instance.open(&self.options()).await.unwrap().expect("login");
        (instance, conn)
    }

    async fn select_1(&mut self) {
        const OPS: u32 = 200;
        let (mut instance, conn) = self.leashed_session().await;
        let mut native = mysql::Conn::new(self.native_opts()).expect("native login");
        let mut samples = Samples::new(&WITH_PYTHON);
        for round in 0..self.rounds + 2 {
            for which in samples.order(round) {
                let started = Instant::now();
                let took = match which {
                    0 => {
                        for _ in 0..OPS {
                            let one: Option<u8> = native.query_first("SELECT 1").unwrap();
                            assert_eq!(one, Some(1));
                        }
                        Some(started.elapsed())
                    }
                    1 => {
                        for _ in 0..OPS {
                            instance.query(conn, "SELECT 1").await.unwrap().expect("SELECT 1");
                        }
                        Some(started.elapsed())
                    }
                    python => self.python_block(python, PyWorkload::Select1, OPS).await,
                };
                if let Some(took) = took.filter(|_| round >= 2) {
                    samples.record(which, took, OPS);
                }
            }
        }
        instance.close(conn).await.unwrap().unwrap();
        println!("{}", samples.row("SELECT 1 round trip"));
    }

    async fn rows_buffered(&mut self) {
        let (mut instance, conn) = self.leashed_session().await;
        let mut native = mysql::Conn::new(self.native_opts()).expect("native login");
        let mut samples = Samples::new(&WITH_PYTHON);
        // Half the rounds, at least 10: a third (6 at `scripts/bench 20`) left the interval
        // wider than the distance between the median and the 1.3x target.
        let rounds = (self.rounds / 2).max(10);
        for round in 0..rounds + 1 {
            for which in samples.order(round) {
                let started = Instant::now();
                let took = match which {
                    0 => {
                        assert_eq!(native.query::<(u64, u64, String), _>(ROWS_SQL).unwrap().len(), 200_000);
                        Some(started.elapsed())
                    }
                    1 => {
                        let sets = instance.query(conn, ROWS_SQL).await.unwrap().expect("rows");
                        assert_eq!(sets[0].rows.len(), 200_000);
                        Some(started.elapsed())
                    }
                    python => self.python_block(python, PyWorkload::Rows, 1).await,
                };
                if let Some(took) = took.filter(|_| round >= 1) {
                    samples.record(which, took, 1);
                }
            }
        }
        instance.close(conn).await.unwrap().unwrap();
        println!("{}", samples.row("200k rows x 3 columns, buffered"));
    }

    async fn connect_auth_close(&mut self) {
        const OPS: u32 = 20;
        let mut instance = self.runtime.instantiate(self.policy()).await.expect("instantiate");
        let options = self.options();
        // PyMySQL's blocks are shorter: a Python connect takes several times as long.
        const PYTHON_OPS: u32 = 2;
        let mut samples = Samples::new(&WITH_PYTHON);
        for round in 0..self.rounds + 2 {
            for which in samples.order(round) {
                let started = Instant::now();
                let (took, ops) = match which {
                    0 => {
                        (0..OPS).for_each(|_| drop(mysql::Conn::new(self.native_opts()).expect("native login")));
                        (Some(started.elapsed()), OPS)
                    }
                    1 => {
                        for _ in 0..OPS {
                            let conn = instance.open(&options).await.unwrap().expect("login");
                            instance.close(conn).await.unwrap().unwrap();
                        }
                        (Some(started.elapsed()), OPS)
                    }
                    python => (self.python_block(python, PyWorkload::Connect, PYTHON_OPS).await, PYTHON_OPS),
                };
                if let Some(took) = took.filter(|_| round >= 2) {
                    samples.record(which, took, ops);
                }
            }
        }
        println!("{}", samples.row("connect + auth + close"));
    }

    async fn fresh_instance_request(&mut self) {
        const OPS: u32 = 20;
        let options = self.options();
        let lot = Arc::new(ParkingLot::new(ParkingLimits::default()));
        let reusing = Policy { reuse: Some(SessionReuse { lot, scope: "bench".into() }), ..self.policy() };
        let mut samples = Samples::new(&["native", "leashed", "leashed, reuse"]);
        for round in 0..self.rounds + 2 {
            for which in samples.order(round) {
                let started = Instant::now();
                for _ in 0..OPS {
                    if which == 0 {
                        let mut conn = mysql::Conn::new(self.native_opts()).expect("native login");
                        conn.query_drop("SELECT 1").unwrap();
                    } else {
                        let policy = if which == 1 { self.policy() } else { reusing.clone() };
                        let mut instance = self.runtime.instantiate(policy).await.expect("instantiate");
                        let conn = instance.open(&options).await.unwrap().expect("login");
                        instance.query(conn, "SELECT 1").await.unwrap().expect("SELECT 1");
                        instance.close(conn).await.unwrap().unwrap();
                    }
                }
                if round >= 2 {
                    samples.record(which, started.elapsed(), OPS);
                }
            }
        }
        println!("{}", samples.row("new instance + connect + SELECT 1 + close"));
    }

    async fn instantiate_alone(&mut self) {
        const OPS: u32 = 50;
        let mut samples = Samples::new(&["leashed"]);
        for round in 0..self.rounds + 2 {
            let started = Instant::now();
            for _ in 0..OPS {
                drop(self.runtime.instantiate(self.policy()).await.expect("instantiate"));
            }
            if round >= 2 {
                samples.record(0, started.elapsed(), OPS);
            }
        }
        println!("{}", samples.row("instantiate alone (pooling allocator)"));
    }

    fn cli_one_shot(&mut self) {
        let leashed = sibling("leashed", "LEASHED_BIN");
        let password = format!("-p{}", self.url.password.clone().unwrap_or_default());
        let port = self.url.port.to_string();
        let mariadb = ["-h", &self.url.host, "-P", &port, "-u", &self.url.user, &password, "-e", "SELECT 1"];
        let mut samples = Samples::new(&["mariadb -e", "leashed query"]);
        for round in 0..(self.rounds / 3).max(5) + 1 {
            for which in samples.order(round) {
                let started = Instant::now();
                let status = if which == 0 {
                    Command::new("mariadb").args(mariadb).stdout(Stdio::null()).status()
                } else {
                    Command::new(&leashed)
                        .args(["query", "--url", &self.text_url, "SELECT 1"])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                };
                assert!(status.is_ok_and(|s| s.success()), "the one-shot {which} failed");
                if round >= 1 {
                    samples.record(which, started.elapsed(), 1);
                }
            }
        }
        println!("{}", samples.row("CLI one-shot SELECT 1 (vs the mariadb client)"));
    }

    /// One served request, two ways of measuring it: against the native client doing what
    /// the plugin does (connect, prepared SELECT, close), and against the anchor a user would
    /// pick instead of a plugin, `items_native` (a tokio + hyper service over a mysql_async
    /// pool), answering the same GET over keep-alive HTTP. One request at a time.
    fn serve_request(&mut self) {
        const OPS: u32 = 20;
        let plugin = std::env::var("LEASHED_PLUGIN").unwrap_or_else(|_| env!("LEASHED_BENCH_PLUGIN").into());
        let allow = format!("{}:{}", self.url.host, self.url.port);
        let mut setup = mysql::Conn::new(self.native_opts()).expect("native login");
        setup
            .query_drop(
                "CREATE TABLE IF NOT EXISTS items (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, \
                 name VARCHAR(100) NOT NULL, price DECIMAL(10,2) NOT NULL); \
                 INSERT IGNORE INTO items (id, name, price) VALUES (1, 'item-1', 0.25)",
            )
            .expect("the items table");
        // Columns: 0 native connect, 1 the pooled service, 2 serve without reuse, 3 with.
        let mut versus_connect = Samples::new(&["native", "serve, no reuse", "serve, reuse"]);
        let mut versus_pool = Samples::new(&["native pooled service", "serve, no reuse", "serve, reuse"]);
        let mut pooled = Served::spawn(
            Command::new(sibling("items_native", "LEASHED_ITEMS_NATIVE")).env("DATABASE_URL", &self.text_url),
            &["--listen"],
        );
        let mut fresh = Served::start(&plugin, &allow, &self.text_url, &["--no-session-reuse"]);
        let mut reused = Served::start(&plugin, &allow, &self.text_url, &[]);
        let mut clients = [
            KeepAlive::connect(&pooled.addr).expect("connect to items_native"),
            KeepAlive::connect(&fresh.addr).expect("connect to leashed serve"),
            KeepAlive::connect(&reused.addr).expect("connect to leashed serve"),
        ];
        for round in 0..self.rounds + 2 {
            // Rotated, so none always goes first.
            for which in (0..4).map(|i| (i + round) % 4) {
                let started = Instant::now();
                for _ in 0..OPS {
                    if which == 0 {
                        // What the plugin's GET /items/1 does, natively: connect, prepared SELECT, close.
                        let mut conn = mysql::Conn::new(self.native_opts()).expect("native login");
                        let row: Option<(u64, String, String)> = conn
                            .exec_first("SELECT id, name, CAST(price AS CHAR) FROM items WHERE id = ?", (1,))
                            .unwrap();
                        assert!(row.is_some(), "items needs a row 1");
                    } else {
                        let (status, body) = clients[which - 1].get("/items/1").expect("GET /items/1");
                        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                    }
                }
                if round >= 2 {
                    let took = started.elapsed();
                    match which {
                        0 => versus_connect.record(0, took, OPS),
                        1 => versus_pool.record(0, took, OPS),
                        served => {
                            versus_connect.record(served - 1, took, OPS);
                            versus_pool.record(served - 1, took, OPS);
                        }
                    }
                }
            }
        }
        pooled.stop();
        fresh.stop();
        reused.stop();
        println!("{}", versus_connect.row("one request (connect, prepared SELECT, close)"));
        println!("{}", versus_pool.row("one request vs a pooled native service"));
    }
}

/// A binary next to this one (target/release), or the one `$var` names.
fn sibling(name: &str, var: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::current_exe().expect("own path").with_file_name(name))
}

/// `leashed serve` of the items plugin, TLS off, on a free port.
struct Served {
    child: Child,
    addr: String,
}

impl Served {
    fn start(plugin: &str, allow: &str, url: &str, extra: &[&str]) -> Served {
        let mut serve = Command::new(sibling("leashed", "LEASHED_BIN"));
        serve
            .args(["serve", plugin, "--allow", allow, "--log-format", "json"])
            .args(["--env", &format!("DATABASE_URL={url}"), "--env", "MYSQL_TLS_MODE=disabled"])
            .args(extra);
        Served::spawn(&mut serve, &["--listen"])
    }

    /// Runs `command` with `listen_flag` and a free port appended, and waits until it listens.
    fn spawn(command: &mut Command, listen_flag: &[&str]) -> Served {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let child = command
            .args(listen_flag)
            .arg(&addr)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{command:?} starts: {e}"));
        let until = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < until, "{command:?} did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Served { child, addr }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
