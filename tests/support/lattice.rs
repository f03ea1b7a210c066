//! A wasmCloud 2 lattice for the test that runs composed plugins on it, driven through
//! scripts/lattice exactly as its users run it (NATS, an OCI registry and `wash host`
//! processes on loopback, each by pid), with its state in the test's scratch directory and torn
//! down when the value is dropped, even after a failed assertion.

use crate::served::{Reply, curl_with, scratch_dir};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where scripts/install-wasmcloud could not reach a registry (`$LEASHED_WASMCLOUD_SKIP`, set
/// by scripts/test): the reason to skip, if any.
pub fn skip_reason() -> Option<String> {
    std::env::var("LEASHED_WASMCLOUD_SKIP").ok()
}

/// A lattice brought up by `scripts/lattice up`.
pub struct Lattice {
    dir: PathBuf,
}

impl Lattice {
    /// `scripts/lattice up HOSTS`, in a state directory of its own under `name`.
    pub fn up(name: &str, hosts: usize) -> Lattice {
        let dir = scratch_dir().join(format!("lattice-{name}"));
        let lattice = Lattice { dir };
        lattice.run(&["up", &hosts.to_string()]);
        lattice
    }

    /// Runs `scripts/lattice ARGS…` on this lattice and returns its stderr; fails the test if
    /// it fails.
    pub fn run(&self, args: &[&str]) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/lattice");
        let out =
            Command::new(&script).args(args).env("LATTICE_DIR", &self.dir).output().expect("scripts/lattice runs");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "scripts/lattice {}: {}\n{stderr}", args.join(" "), out.status);
        stderr
    }

    /// `scripts/lattice deploy NAME COMPONENT --route ROUTE --env K=V… --loopback-port PORT`.
    pub fn deploy(&self, name: &str, component: &Path, route: &str, envs: &[(&str, &str)], loopback_port: u16) {
        let mut args: Vec<String> = vec![
            "deploy".into(),
            name.into(),
            component.display().to_string(),
            "--route".into(),
            route.into(),
            "--loopback-port".into(),
            loopback_port.to_string(),
        ];
        for (key, value) in envs {
            args.extend(["--env".into(), format!("{key}={value}")]);
        }
        self.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }

    /// Host `name`'s HTTP address, e.g. `127.0.0.1:40123`.
    pub fn addr(&self, host: &str) -> String {
        self.state(&format!("hosts/{host}.addr"))
    }

    /// Host `name`'s process id, while the lattice knows it.
    pub fn pid(&self, host: &str) -> u32 {
        self.state(&format!("pids/{host}.pid")).parse().unwrap()
    }

    /// Every process of the lattice (NATS, registry, hosts) that the lattice started, by pid.
    pub fn pids(&self) -> Vec<u32> {
        let entries = std::fs::read_dir(self.dir.join("pids")).map(|dir| dir.flatten().collect::<Vec<_>>());
        entries
            .unwrap_or_default()
            .iter()
            .filter_map(|entry| std::fs::read_to_string(entry.path()).ok()?.trim().parse().ok())
            .collect()
    }

    fn state(&self, file: &str) -> String {
        let path = self.dir.join(file);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).trim().to_string()
    }
}

impl Drop for Lattice {
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/lattice");
        let _ = Command::new(script).arg("down").env("LATTICE_DIR", &self.dir).output();
    }
}

/// True while any thread of process `pid` runs. A zombie counts as gone (the sandbox's init
/// reaps late), but a main thread that exits before the others looks like one, so every thread
/// is asked.
pub fn running(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return false };
    tasks.flatten().any(|task| {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
        matches!(state, Some(s) if s != "Z")
    })
}

/// `curl -X METHOD -H 'Host: ROUTE' http://ADDR/PATH [--data BODY]`: how a lattice host is
/// asked, since it routes on the Host header.
pub fn routed(addr: &str, route: &str, method: &str, path: &str, body: Option<&str>) -> Reply {
    curl_with(addr, method, path, body, &[&format!("Host: {route}")])
}
