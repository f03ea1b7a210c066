//! wasmCloud 2: the example plugins composed `--for wasi-sockets` run on a lattice of two
//! `wash host` processes sharing one NATS and one OCI registry, all on loopback, brought up by
//! scripts/lattice (wash 2.10.3, nats-server 2.15.1 from PyPI; docker-registry from Debian),
//! against the private MariaDB, which a workload reaches as host.wasmcloud.internal.
//!
//! - Requests spread over both hosts answer byte for byte as `leashed serve` does, for the Rust
//!   and the Python plugin, reads and writes.
//! - With one host stopped, the other goes on serving the same answers.
//! - After the load, no host process holds a socket to MariaDB; `scripts/lattice down` leaves
//!   no process of the lattice running.
//!
//! Skipped, saying so, only when scripts/install-wasmcloud could not reach PyPI or Debian.

use leashed_tests::composed::{
    COMPARED_PATHS, assert_no_socket_to_mariadb, assert_same_reply, compose_for_wasi_sockets, db_port,
    leashed_serve_with, new_id,
};
use leashed_tests::items::{ITEMS, items_table};
use leashed_tests::lattice::{Lattice, routed, running, skip_reason};
use std::net::TcpStream;

/// The plugins deployed, by workload name and the Host header that routes to it.
const PLUGINS: [(&str, &str); 2] = [("items-rust", "items-rust.local"), ("items-python", "items-python.local")];
const HOSTS: [&str; 2] = ["h1", "h2"];

/// One test: the lattice takes a few seconds to come up, and its POSTs must not race another
/// test's comparisons of the list.
#[test]
fn two_hosts_answer_like_leashed_serve_survive_one_stopping_and_keep_no_socket() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED: no wasmCloud lattice ({why})");
        return;
    }
    items_table();
    let url = std::env::var("LEASHED_TEST_NATIVE_URL").unwrap();
    let local: [(&str, &str); 2] = [("DATABASE_URL", &url), ("MYSQL_TLS_MODE", "disabled")];
    // Inside a workload 127.0.0.1 is its own loopback; the machine's is host.wasmcloud.internal.
    let in_workload = url.replacen("@127.0.0.1:", "@host.wasmcloud.internal:", 1);
    let remote: [(&str, &str); 2] = [("DATABASE_URL", &in_workload), ("MYSQL_TLS_MODE", "disabled")];

    let lattice = Lattice::up("two-hosts", HOSTS.len());
    let components = [
        compose_for_wasi_sockets(Some(env!("LEASHED_PLUGIN_ITEMS_RUST")), "lattice-rust"),
        compose_for_wasi_sockets(Some(env!("LEASHED_PLUGIN_ITEMS_PYTHON")), "lattice-python"),
    ];
    for ((name, route), component) in PLUGINS.iter().zip(&components) {
        lattice.deploy(name, component, route, &remote, db_port());
    }
    let mut leashed = leashed_serve_with(&local);
    let host_pids: Vec<u32> = HOSTS.iter().map(|host| lattice.pid(host)).collect();

    // Every compared request, on every host, through both plugins.
    for path in COMPARED_PATHS {
        let expected = leashed.get(path);
        for host in HOSTS {
            for (name, route) in PLUGINS {
                let got = routed(&lattice.addr(host), route, "GET", path, None);
                assert_same_reply(&got, &expected, &format!("{name} on {host}, GET {path}"));
            }
        }
    }
    let streamed = routed(&lattice.addr("h2"), PLUGINS[1].1, "GET", "/items?stream=1", None);
    assert_eq!(streamed.body.lines().count() as u64, ITEMS, "one NDJSON line per row");

    // Writes through one host, read back through the other.
    let first = routed(&lattice.addr("h1"), PLUGINS[0].1, "POST", "/items", Some(r#"{"name":"pear","price":"0.90"}"#));
    let second = routed(&lattice.addr("h2"), PLUGINS[1].1, "POST", "/items", Some(r#"{"name":"date","price":"3.20"}"#));
    assert_eq!((first.status, second.status), (201, 201), "{first:?} {second:?}");
    assert_eq!(new_id(&second), new_id(&first) + 1, "{first:?} {second:?}");
    for (id, host) in [(new_id(&first), "h2"), (new_id(&second), "h1")] {
        let path = format!("/items/{id}");
        assert_eq!(routed(&lattice.addr(host), PLUGINS[0].1, "GET", &path, None), leashed.get(&path));
    }

    // A load spread over both hosts and both plugins, then no socket to MariaDB in either host.
    for n in 0..200u64 {
        let (host, (name, route)) = (HOSTS[(n % 2) as usize], PLUGINS[((n / 2) % 2) as usize]);
        let path = format!("/items/{}", n % ITEMS + 1);
        let reply = routed(&lattice.addr(host), route, "GET", &path, None);
        assert_eq!(reply.status, 200, "{name} on {host}, GET {path}: {reply:?}");
    }
    assert_no_socket_to_mariadb(&host_pids, "200 requests over both hosts");

    // One host stops; the other goes on with the same answers.
    let h1 = lattice.addr("h1");
    lattice.run(&["stop-host", "h1"]);
    assert!(!running(host_pids[0]), "host h1 (pid {}) still runs after stop-host", host_pids[0]);
    assert!(TcpStream::connect(&h1).is_err(), "host h1's port {h1} still accepts");
    for path in COMPARED_PATHS {
        let expected = leashed.get(path);
        for (name, route) in PLUGINS {
            let got = routed(&lattice.addr("h2"), route, "GET", path, None);
            assert_eq!(
                (got.status, &got.body),
                (expected.status, &expected.body),
                "{name} on h2 after h1 stopped, {path}"
            );
        }
    }
    assert_no_socket_to_mariadb(&host_pids[1..], "h1 stopped");

    // Down: nothing of the lattice is left running.
    let pids = lattice.pids();
    assert_eq!(pids.len(), 3, "NATS, the registry and h2 still listed: {pids:?}");
    drop(lattice);
    let left: Vec<u32> = pids.into_iter().filter(|&pid| running(pid)).collect();
    assert!(left.is_empty(), "scripts/lattice down left these running: {left:?}");
    for component in components {
        let _ = std::fs::remove_file(component);
    }
}
