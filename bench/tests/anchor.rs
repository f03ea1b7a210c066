//! The serving benchmark's anchor (src/bin/items_native.rs) answers the items API with the
//! bytes items-rust answers under `leashed serve`, so that loading both compares like with like:
//! every route, misses, bad input, the list, the stream, wrong methods and writes. Against the
//! private MariaDB (scripts/test).

use leashed_tests::composed::{COMPARED_PATHS, assert_same_reply, leashed_serve_with, new_id};
use leashed_tests::items::{ITEMS, items_table};
use leashed_tests::served::{collect_lines, curl, wait_for_line};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// items_native on a free port, stopped when dropped.
struct Native {
    child: Child,
    addr: String,
}

impl Native {
    fn start(url: &str) -> Native {
        let mut child = Command::new(env!("CARGO_BIN_EXE_items_native"))
            .args(["--listen", "127.0.0.1:0"])
            .env("DATABASE_URL", url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("items_native starts");
        let log = Arc::new(Mutex::new(String::new()));
        collect_lines(child.stderr.take().unwrap(), &log);
        let line = wait_for_line(&mut child, &log, "items_native", "listening on http://", Duration::from_secs(30));
        let addr = line.split("http://").nth(1).unwrap().trim_end_matches('/').to_string();
        Native { child, addr }
    }
}

impl Drop for Native {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_native_anchor_answers_like_items_rust_on_leashed_serve() {
    items_table();
    let url = std::env::var("LEASHED_TEST_NATIVE_URL").expect("LEASHED_TEST_NATIVE_URL (scripts/test sets it)");
    let native = Native::start(&url);
    let mut leashed = leashed_serve_with(&[("DATABASE_URL", &url), ("MYSQL_TLS_MODE", "disabled")]);
    for path in COMPARED_PATHS.iter().chain(&["/items/", "/items/1/2", "/items/18446744073709551616"]) {
        let expected = leashed.get(path);
        assert_same_reply(&curl(&native.addr, "GET", path, None), &expected, &format!("items_native, GET {path}"));
    }
    let streamed = curl(&native.addr, "GET", "/items?stream=1", None);
    assert_eq!(streamed.body.lines().count() as u64, ITEMS, "one NDJSON line per row");
    for (method, path) in [("PUT", "/items"), ("DELETE", "/items/1")] {
        let expected = leashed.request(method, path, None);
        assert_same_reply(
            &curl(&native.addr, method, path, None),
            &expected,
            &format!("items_native, {method} {path}"),
        );
    }
    for bad in ["{", "[]", r#"{"name":"x","price":2}"#] {
        let expected = leashed.request("POST", "/items", Some(bad));
        assert_same_reply(&curl(&native.addr, "POST", "/items", Some(bad)), &expected, &format!("POST {bad}"));
    }
    let first = curl(&native.addr, "POST", "/items", Some(r#"{"name":"quince","price":"1.75"}"#));
    let second = leashed.request("POST", "/items", Some(r#"{"name":"sloe","price":"0.05"}"#));
    assert_eq!((first.status, second.status), (201, 201), "{first:?} {second:?}");
    assert_eq!(new_id(&second), new_id(&first) + 1, "{first:?} {second:?}");
    let path = format!("/items/{}", new_id(&first));
    assert_same_reply(&curl(&native.addr, "GET", &path, None), &leashed.get(&path), &format!("GET {path}"));
}
