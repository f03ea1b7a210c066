//! A stock wasmtime CLI (the official binary, not leashed's host), for the tests that prove a
//! component composed `--for wasi-sockets` runs on it: where the binary is, `wasmtime serve` on a
//! free port with its output collected, `wasmtime run`, and listeners that misbehave for the
//! adapter's error codes.

use crate::served::{Reply, collect_lines, curl, wait_for_line};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The stock wasmtime the tests run: what scripts/install-stock-wasmtime installs.
pub const STOCK_WASMTIME_VERSION: &str = "49.0.3";

/// The WASI options a leashed component composed for wasi:sockets needs under `wasmtime serve`:
/// wasi:cli (std's imports), the host's network, and name lookups.
pub const SERVE_WASI: &str = "cli,inherit-network,allow-ip-name-lookup";

/// The stock wasmtime binary: `$LEASHED_STOCK_WASMTIME` (scripts/test sets it), else `wasmtime`
/// on PATH; it must report [`STOCK_WASMTIME_VERSION`].
pub fn stock_wasmtime() -> PathBuf {
    let binary = std::env::var_os("LEASHED_STOCK_WASMTIME").map_or_else(|| PathBuf::from("wasmtime"), PathBuf::from);
    let version = Command::new(&binary).arg("--version").output();
    let version = version.map(|out| String::from_utf8_lossy(&out.stdout).into_owned()).unwrap_or_default();
    assert!(
        version.starts_with(&format!("wasmtime {STOCK_WASMTIME_VERSION} ")),
        "these tests need the stock wasmtime CLI {STOCK_WASMTIME_VERSION}, and {} reports {version:?}; run \
         scripts/install-stock-wasmtime (scripts/test does) and set LEASHED_STOCK_WASMTIME to the path it prints",
        binary.display()
    );
    binary
}

/// A running `wasmtime serve`.
pub struct StockServe {
    child: Child,
    /// Where it listens, e.g. `127.0.0.1:40123`.
    pub addr: String,
    log: Arc<Mutex<String>>,
}

impl StockServe {
    /// `wasmtime serve -S WASI --addr 127.0.0.1:0 --env K=V… COMPONENT`, once it listens.
    pub fn start(component: &Path, wasi: &str, envs: &[(&str, &str)]) -> StockServe {
        let mut command = Command::new(stock_wasmtime());
        command.args(["serve", "-S", wasi, "--addr", "127.0.0.1:0"]);
        for (name, value) in envs {
            command.arg("--env").arg(format!("{name}={value}"));
        }
        let mut child = command
            .arg(component)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wasmtime serve starts");
        let log = Arc::new(Mutex::new(String::new()));
        collect_lines(child.stdout.take().unwrap(), &log);
        collect_lines(child.stderr.take().unwrap(), &log);
        let mut served = StockServe { child, addr: String::new(), log };
        let line = served.wait_for_log("Serving HTTP on http://", Duration::from_secs(120));
        let start = line.find("http://").unwrap() + "http://".len();
        served.addr = line[start..].split('/').next().unwrap().to_string();
        served
    }

    /// Everything it printed so far, stdout and stderr.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until a line it printed contains `needle`, and returns that line.
    pub fn wait_for_log(&mut self, needle: &str, within: Duration) -> String {
        wait_for_line(&mut self.child, &self.log, "wasmtime serve", needle, within)
    }

    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        curl(&self.addr, method, path, body)
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, None)
    }

    /// The process id, for /proc.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for StockServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `wasmtime run -S WASI --env K=V… COMPONENT ARGS…`, to the end.
pub fn wasmtime_run(component: &Path, wasi: &str, envs: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(stock_wasmtime());
    command.args(["run", "-S", wasi]);
    for (name, value) in envs {
        command.arg("--env").arg(format!("{name}={value}"));
    }
    command.arg(component).args(args).stdin(Stdio::null()).output().expect("wasmtime run starts")
}

/// A port on 127.0.0.1 where nothing listens (bound, then closed).
pub fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A listener on 127.0.0.1 whose every connection gets `treat` on a thread of its own; returns
/// the port. It serves until the test process ends.
pub fn listener(treat: fn(std::net::TcpStream)) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || treat(stream));
        }
    });
    port
}

/// Accepts and says nothing for a minute (a server that hangs before its greeting).
pub fn silent(stream: std::net::TcpStream) {
    std::thread::sleep(Duration::from_secs(60));
    drop(stream);
}

/// Accepts and resets the connection at once (SO_LINGER 0, then close: an RST).
pub fn resetting(stream: std::net::TcpStream) {
    let socket = socket2::Socket::from(stream);
    socket.set_linger(Some(Duration::ZERO)).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    drop(socket);
}
