//! The audit fails closed: when /proc/self/fd cannot be read, a report says so as a host problem
//! and is not clean, never "0 open". A test binary of its own, with one test: it takes every fd
//! of its process, which would break any test running beside it.

use leashed::bindings::leashed::net::tcp::ConnectOptions;
use leashed::state::HostState;
use leashed::{AllowEntry, Allowlist, Policy};
use tokio::net::TcpListener;

/// When /proc/self/fd cannot be read (here: every fd is taken, and reading the directory needs
/// one), a report says so as a host problem and is not clean; a socket's state is then taken as
/// open. Nothing reads as "0 open".
#[tokio::test(flavor = "current_thread")]
async fn an_unreadable_fd_table_is_a_host_problem_not_nothing_open() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut state = HostState::new(Policy::allowing(Allowlist::new([AllowEntry::host_port("127.0.0.1", port)])));
    let opts =
        || ConnectOptions { connect_timeout_ms: None, read_timeout_ms: None, write_timeout_ms: None, nodelay: true };
    let conn = state.lend_connection("127.0.0.1".into(), port, opts(), vec![]).await.unwrap();
    let record = state.audit.records().into_iter().next().unwrap();
    let (fd, inode) = (record.fd.unwrap(), record.socket_inode.unwrap());
    state.drop_connection(conn, vec![]).unwrap();
    assert!(state.audit.store_report().is_clean());

    let exhausted = FdsExhausted::new();
    assert!(leashed::os_fds::open_socket_inodes().is_err(), "the fd table is full");
    let report = state.audit.store_report();
    assert!(!report.is_clean());
    let why = report.os_unreadable.clone().expect("the report says it could not look");
    assert!(why.contains("cannot read /proc/self/fd"), "{why}");
    assert!(state.audit.sockets_still_open().is_err());
    // The fd number is free again, so a look by number says closed; the inode check cannot
    // look, and fails closed.
    assert!(leashed::os_fds::socket_is_open(fd, inode));
    drop(exhausted);

    let text = report.to_text();
    assert!(text.contains("HOST PROBLEM: cannot read /proc/self/fd"), "{text}");
    assert!(state.audit.store_report().is_clean(), "readable again");
    assert_eq!(state.audit.sockets_still_open(), Ok(vec![]));
}

/// Every fd of the process taken (under a lowered soft limit), until dropped.
struct FdsExhausted {
    files: Vec<std::fs::File>,
    limit: libc::rlimit,
}

impl FdsExhausted {
    fn new() -> Self {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit/setrlimit read and write the struct given and nothing else.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
        let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
        let lowered = libc::rlimit { rlim_cur: open + 32, rlim_max: limit.rlim_max };
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lowered) }, 0);
        let mut files = Vec::new();
        while let Ok(file) = std::fs::File::open("/dev/null") {
            files.push(file);
            assert!(files.len() < 10_000, "the lowered limit did not hold");
        }
        FdsExhausted { files, limit }
    }
}

impl Drop for FdsExhausted {
    fn drop(&mut self) {
        self.files.clear();
        // SAFETY: as above.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &self.limit) };
    }
}
