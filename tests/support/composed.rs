//! What every test of a component composed `--for wasi-sockets` shares, whichever runtime runs
//! it (stock wasmtime, jco, wasmCloud): the composition itself, the requests whose answers must
//! match `leashed serve` byte for byte, that reference server, and the wait until a runtime's
//! processes hold no socket to MariaDB.

use crate::served::{Reply, Served, leashed_bin, scratch_dir, sockets_to_port};
use crate::{Account, url};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// `leashed compose [INPUT] --for wasi-sockets -o OUTPUT` (no INPUT: the MySQL guest alone);
/// `name` tells the output apart in the test's scratch directory.
pub fn compose_for_wasi_sockets(input: Option<&str>, name: &str) -> PathBuf {
    let output = scratch_dir().join(format!("leashed-stock-{name}.wasm"));
    let out = Command::new(leashed_bin())
        .arg("compose")
        .args(input)
        .args(["--for", "wasi-sockets", "-o"])
        .arg(&output)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "compose {input:?}: {}", String::from_utf8_lossy(&out.stderr));
    output
}

/// The private MariaDB's port.
pub fn db_port() -> u16 {
    url(Account::Native).port
}

/// The requests a runtime and `leashed serve` get, and must answer byte for byte alike: a row,
/// the last row, a miss, bad input, the 3000-row list, the streamed list, and no such route.
pub const COMPARED_PATHS: [&str; 7] =
    ["/items/1", "/items/3000", "/items/99999", "/items/abc", "/items", "/items?stream=1", "/nowhere"];

/// `leashed serve` of the Rust plugin with the environment `envs`, allowed to reach MariaDB by
/// the name or the address the URL gives: the reference answers.
pub fn leashed_serve_with(envs: &[(&str, &str)]) -> Served {
    let mut args: Vec<String> = vec![
        "--allow".into(),
        format!("127.0.0.1:{}", db_port()),
        "--allow".into(),
        format!("localhost:{}", db_port()),
    ];
    for (name, value) in envs {
        args.extend(["--env".into(), format!("{name}={value}")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Served::start(env!("LEASHED_PLUGIN_ITEMS_RUST"), &args)
}

/// Waits (up to 5 s: a runtime drops the instance after the response) until none of the
/// processes `pids` holds a socket to MariaDB.
pub fn assert_no_socket_to_mariadb(pids: &[u32], after: &str) {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let holding: Vec<(u32, usize)> =
            pids.iter().map(|&pid| (pid, sockets_to_port(pid, db_port()))).filter(|&(_, n)| n > 0).collect();
        if holding.is_empty() {
            return;
        }
        assert!(Instant::now() < until, "after {after}, these processes still hold sockets to MariaDB: {holding:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Fails unless `got` has the status and the very bytes of `expected` (what `leashed serve`
/// answered); `what` names the runtime and the request.
pub fn assert_same_reply(got: &Reply, expected: &Reply, what: &str) {
    assert_eq!(got.status, expected.status, "{what}: {got:.300?}");
    assert!(
        got.body == expected.body,
        "{what}: bodies differ\nleashed: {:.300}\ngot:     {:.300}",
        expected.body,
        got.body
    );
}

/// The id a successful POST /items answered with (`{"id":N}`).
pub fn new_id(reply: &Reply) -> u64 {
    let id = reply.body.trim_start_matches(r#"{"id":"#).trim_end_matches('}');
    id.parse().unwrap_or_else(|_| panic!("not a new id: {reply:?}"))
}
