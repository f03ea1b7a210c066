//! The OS's own view of our sockets: /proc/self/fd, for cross-checking the audit.
//!
//! A handle's record keeps its fd and the socket's inode; the socket is really open while some
//! `/proc/self/fd/<n>` still links to `socket:[<inode>]` (an fd number alone may be reused, and a
//! duplicated fd keeps the socket open under another number).
//! Off Linux these answer `None`.

/// The inode of the socket `fd` refers to, if it refers to a socket.
pub fn socket_inode(fd: i32) -> Option<u64> {
    let target = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
    let target = target.to_str()?;
    target.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// Whether the socket with this inode is still open in this process: as `fd`, or through any
/// other fd (a stray duplicate keeps a socket open just as well).
pub fn socket_is_open(fd: i32, inode: u64) -> bool {
    socket_inode(fd) == Some(inode) || open_socket_inodes().contains(&inode)
}

/// Every socket inode this process has open, from /proc/self/fd.
pub fn open_socket_inodes() -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else { return Vec::new() };
    entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()).filter_map(socket_inode).collect()
}
