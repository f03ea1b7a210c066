//! `leashed serve` as a user runs it, for the serve tests: the real binary on a free port, its
//! log collected line by line, requests made with curl, the sockets the process holds read
//! from /proc, and SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `leashed serve`.
pub struct Served {
    child: Child,
    /// Where it listens, e.g. `127.0.0.1:40123`.
    pub addr: String,
    log: Arc<Mutex<String>>,
}

/// A response as curl saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

/// The `leashed` binary of this build.
pub fn leashed_bin() -> PathBuf {
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let bin = deps.parent().unwrap().join("leashed");
    assert!(bin.is_file(), "{} is missing: run the tests with scripts/test (cargo test --workspace)", bin.display());
    bin
}

/// A scratch directory for what a test writes (composed components, a lattice's state): the
/// `tmp` directory cargo gives integration tests, next to the test binaries' profile directory.
pub fn scratch_dir() -> PathBuf {
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let dir = deps.parent().unwrap().parent().unwrap().join("tmp");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

impl Served {
    /// Starts `leashed serve PLUGIN --listen 127.0.0.1:0 ARGS…` and waits until it listens.
    pub fn start(plugin: &str, args: &[&str]) -> Served {
        let mut child = Command::new(leashed_bin())
            .arg("serve")
            .arg(plugin)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("leashed serve starts");
        let log = Arc::new(Mutex::new(String::new()));
        collect_lines(child.stderr.take().unwrap(), &log);
        let mut served = Served { child, addr: String::new(), log };
        let line = served.wait_for_log("http://", Duration::from_secs(120));
        let start = line.find("http://").unwrap() + "http://".len();
        served.addr = line[start..].split('/').next().unwrap().to_string();
        served
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until a log line contains `needle`, and returns that line.
    pub fn wait_for_log(&mut self, needle: &str, within: Duration) -> String {
        wait_for_line(&mut self.child, &self.log, "leashed serve", needle, within)
    }

    /// The number of access-log lines so far (one per finished request).
    pub fn requests_logged(&self) -> usize {
        self.log().lines().filter(|l| l.contains("leashed::access") && l.contains("outcome")).count()
    }

    /// `curl -X METHOD http://ADDR/PATH [--data BODY]`; waits until the request's log line is out.
    pub fn request(&mut self, method: &str, path: &str, body: Option<&str>) -> Reply {
        let before = self.requests_logged();
        let reply = curl(&self.addr, method, path, body);
        let until = Instant::now() + Duration::from_secs(30);
        while self.requests_logged() <= before {
            assert!(Instant::now() < until, "no access-log line for {method} {path}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(10));
        }
        reply
    }

    /// `curl http://ADDR/PATH` on a thread of its own, for a request that takes a while; the
    /// handle yields its status.
    pub fn status_in_background(&self, path: &str) -> std::thread::JoinHandle<u16> {
        let url = format!("http://{}{path}", self.addr);
        std::thread::spawn(move || {
            let out = Command::new("curl").args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", &url]).output();
            String::from_utf8_lossy(&out.expect("curl runs").stdout).parse().expect("curl prints the status")
        })
    }

    pub fn get(&mut self, path: &str) -> Reply {
        self.request("GET", path, None)
    }

    /// The process id, for /proc.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the exit; returns the exit code and the whole log.
    pub fn terminate(mut self) -> (Option<i32>, String) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let until = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < until, "leashed serve did not exit within 60 s of SIGTERM:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        };
        // Let the log reader drain what the process wrote last.
        std::thread::sleep(Duration::from_millis(100));
        (status.code(), self.log())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until a line in `log` (what `child`, called `what`, printed) contains `needle`, and
/// returns that line; fails if the child exits first or `within` passes.
pub fn wait_for_line(
    child: &mut Child,
    log: &Arc<Mutex<String>>,
    what: &str,
    needle: &str,
    within: Duration,
) -> String {
    let until = Instant::now() + within;
    loop {
        let text = log.lock().unwrap().clone();
        if let Some(line) = text.lines().find(|l| l.contains(needle)) {
            return line.to_string();
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited ({status}) before printing {needle:?}:\n{text}");
        }
        assert!(Instant::now() < until, "{what} printed no {needle:?} within {within:?}:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Appends each line `output` gives to `log`, on a thread of its own.
pub fn collect_lines(output: impl std::io::Read + Send + 'static, log: &Arc<Mutex<String>>) {
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
}

/// `curl -X METHOD http://ADDR/PATH [--data BODY]`: the status and the body.
pub fn curl(addr: &str, method: &str, path: &str, body: Option<&str>) -> Reply {
    curl_with(addr, method, path, body, &[])
}

/// `curl`, with the request headers `headers` (`Name: value`) as well.
pub fn curl_with(addr: &str, method: &str, path: &str, body: Option<&str>, headers: &[&str]) -> Reply {
    let url = format!("http://{addr}{path}");
    let mut curl = Command::new("curl");
    curl.args(["-sS", "--max-time", "60", "-X", method, "-w", "\n%{http_code}", &url]);
    for header in headers {
        curl.args(["-H", header]);
    }
    if let Some(body) = body {
        curl.args(["-H", "content-type: application/json", "--data-binary", body]);
    }
    let out = curl.output().expect("curl runs");
    assert!(out.status.success(), "curl {method} {url} failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("UTF-8 response");
    let (body, status) = text.rsplit_once('\n').unwrap();
    Reply { status: status.parse().unwrap(), body: body.to_string() }
}

/// TCP sockets process `pid` holds that are connected to `port` on the remote side.
pub fn sockets_to_port(pid: u32, port: u16) -> usize {
    let inodes: Vec<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|entry| {
                let target = std::fs::read_link(entry.ok()?.path()).ok()?;
                let text = target.to_str()?;
                text.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
            })
            .collect()
        })
        .unwrap_or_default();
    let mut count = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{}", &table[10..])) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(remote), Some(inode)) = (fields.get(2), fields.get(9)) else { continue };
            let remote_port = remote.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
            if remote_port == Some(port) && inode.parse::<u64>().is_ok_and(|i| inodes.contains(&i)) {
                count += 1;
            }
        }
    }
    count
}

/// Open file descriptors of process `pid` (its entries in /proc/PID/fd).
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|dir| dir.count()).unwrap_or(0)
}

/// Sockets among the open file descriptors of process `pid`.
pub fn open_sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
                .filter(|target| target.to_str().is_some_and(|t| t.starts_with("socket:[")))
                .count()
        })
        .unwrap_or(0)
}

/// Raises this process's soft limit on open files to `wanted`, within the hard limit (child
/// processes inherit it); returns the soft limit now in force.
pub fn raise_open_files_limit(wanted: u64) -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit on a valid rlimit of this process.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0, "getrlimit");
        if limit.rlim_cur < wanted {
            let raised = libc::rlimit { rlim_cur: wanted.min(limit.rlim_max), rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}
