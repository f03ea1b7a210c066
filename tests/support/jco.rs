//! jco on Node.js (scripts/install-jco), for the test that proves a component composed `--for
//! wasi-sockets` runs there: where the binary is, and `jco serve --isolate-requests instance` on
//! loopback with its output collected and its whole process tree stopped at the end.
//!
//! `jco serve` transpiles the component, then starts a second node process that serves it; the
//! sockets live in that child, so the checks look at every process of the group.

use crate::served::{Reply, collect_lines, curl, wait_for_line};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The jco release the test runs: what scripts/install-jco installs.
pub const JCO_VERSION: &str = "1.35.0";

/// Where jco is: `Ok(path)` from `$LEASHED_JCO` (scripts/test sets it); `Err(why)` when
/// scripts/install-jco could not reach the npm registry (`$LEASHED_JCO_SKIP` says so), so the
/// caller skips. Missing both, or a binary of another version, fails.
pub fn jco_binary() -> Result<PathBuf, String> {
    if let Some(why) = std::env::var_os("LEASHED_JCO_SKIP") {
        return Err(why.to_string_lossy().into_owned());
    }
    let binary = std::env::var_os("LEASHED_JCO").map(PathBuf::from).unwrap_or_else(|| {
        panic!("LEASHED_JCO is not set: run scripts/install-jco (scripts/test does) and set it to the path it prints")
    });
    let out = Command::new(&binary).arg("--version").output();
    let version = out.map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string()).unwrap_or_default();
    assert_eq!(version, JCO_VERSION, "{} reports {version:?}; run scripts/install-jco", binary.display());
    Ok(binary)
}

/// A running `jco serve`, in a process group of its own.
pub struct JcoServe {
    child: Child,
    /// Where it listens, e.g. `127.0.0.1:40123`.
    pub addr: String,
    log: Arc<Mutex<String>>,
}

impl JcoServe {
    /// `jco serve --host 127.0.0.1 --port P --isolate-requests instance COMPONENT`, with `envs`
    /// in its environment (jco hands its own environment to the component; it has no `--env`),
    /// once it listens.
    pub fn start(jco: &Path, component: &Path, envs: &[(&str, &str)]) -> JcoServe {
        // jco prints the port it was given, not the one bound, so it gets a free one.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new(jco)
            .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string(), "--isolate-requests", "instance"])
            .arg(component)
            .envs(envs.iter().copied())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("jco serve starts");
        let log = Arc::new(Mutex::new(String::new()));
        collect_lines(child.stdout.take().unwrap(), &log);
        collect_lines(child.stderr.take().unwrap(), &log);
        let mut served = JcoServe { child, addr: format!("127.0.0.1:{port}"), log };
        wait_for_line(&mut served.child, &served.log, "jco serve", "Server listening", Duration::from_secs(120));
        served
    }

    /// Everything it printed so far, stdout and stderr.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        curl(&self.addr, method, path, body)
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, None)
    }

    /// jco and the node process it started to serve (its process group), for /proc.
    pub fn pids(&self) -> Vec<u32> {
        process_group(self.child.id())
    }
}

impl Drop for JcoServe {
    /// Stops the whole group: killing jco alone leaves its serving child behind.
    fn drop(&mut self) {
        let group = self.child.id() as i32;
        // SAFETY: a signal to the process group this value started (`process_group(0)`).
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// The live processes of process group `group`, read from /proc.
fn process_group(group: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // pid (comm) state ppid pgrp …; comm may hold spaces, so count from its ')'.
            let fields: Vec<&str> =
                stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
            fields.get(2).and_then(|pgrp| pgrp.parse::<u32>().ok()) == Some(group)
        })
        .collect()
}
