//! The scripts a newcomer runs first. `scripts/mariadb`: its port lies outside the kernel's
//! ephemeral range, so a run of many short connections cannot leave a TIME_WAIT socket on it,
//! and the server restarts right after such a run (a test binary of its own: it restarts the
//! server the other tests use, and test binaries run one after another). `scripts/demo`:
//! it announces a first build and shows its progress.

use leashed::bindings::TlsMode;
use leashed_tests::served::leashed_bin;
use leashed_tests::{Account, policy_for, runtime, url};
use std::process::Command;

/// The restart takes the server away: these tests run one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn script(args: &[&str]) -> std::process::Output {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    Command::new(root.join("scripts/mariadb")).args(args).current_dir(&root).output().expect("run scripts/mariadb")
}

#[test]
fn the_private_server_restarts_right_after_thousands_of_connections() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let url = url(Account::Native);
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").expect("Linux's port range");
    let bounds: Vec<u16> = range.split_whitespace().map(|n| n.parse().unwrap()).collect();
    assert!(
        url.port < bounds[0] || url.port > bounds[1],
        "port {} is inside the ephemeral range {}-{}",
        url.port,
        bounds[0],
        bounds[1]
    );

    // 2,000 logins and closes, each leaving a TIME_WAIT socket on an ephemeral port of ours.
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
        let mut instance = runtime().instantiate(policy_for(&url)).await.unwrap();
        let options = leashed::bindings::ConnectOptions { tls_mode: TlsMode::Disabled, ..url.connect_options() };
        for _ in 0..2_000 {
            let conn = instance.open(&options).await.unwrap().expect("login");
            instance.close(conn).await.unwrap().unwrap();
        }
        assert_eq!(instance.audit().summary().open, 0);
    });

    let stopped = script(&["stop"]);
    assert!(stopped.status.success(), "{}", String::from_utf8_lossy(&stopped.stderr));
    let started = script(&["start"]);
    let stderr = String::from_utf8_lossy(&started.stderr);
    assert!(started.status.success(), "the server did not start again: {stderr}");
    assert!(stderr.contains(&format!("starting on 127.0.0.1:{}", url.port)), "{stderr}");
    assert!(!stderr.contains("ephemeral range"), "{stderr}");
}

/// `scripts/demo` on a machine without a build: it says how long the first build takes before
/// starting it, and lets cargo show its progress. (cargo is stood in for by a script that
/// prints a progress line and puts the real binary where the build would.)
#[test]
fn the_demo_announces_a_first_build_and_shows_its_progress() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let work = std::env::temp_dir().join(format!("leashed-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let fake_cargo = work.join("cargo");
    std::fs::write(
        &fake_cargo,
        format!(
            "#!/bin/sh\necho '   Compiling leashed (stand-in)' >&2\nmkdir -p \"$CARGO_TARGET_DIR/release\"\ncp '{}' \"$CARGO_TARGET_DIR/release/leashed\"\n",
            leashed_bin().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake_cargo, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let demo = |label: &str| {
        let out = Command::new(root.join("scripts/demo"))
            .arg("SELECT 6 * 7 AS answer")
            .env("CARGO", &fake_cargo)
            .env("CARGO_TARGET_DIR", work.join("target"))
            .env_remove("LEASHED_BIN")
            .current_dir(&root)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{label}: {stderr}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("42 |"), "{label}: {stderr}");
        assert!(!stderr.contains("warning: a password"), "the demo keeps the password off the command line");
        stderr
    };
    let first = demo("first run");
    let notice = first.find("A first build takes about").expect("the notice of a first build");
    let progress = first.find("Compiling leashed (stand-in)").expect("cargo's progress is shown");
    assert!(notice < progress, "the notice comes before the build: {first}");
    let second = demo("second run");
    assert!(!second.contains("A first build"), "a built tree is not announced again: {second}");
    let _ = std::fs::remove_dir_all(&work);
}
