//! The OS's own view of our sockets: /proc/self/fd, for cross-checking the audit.
//!
//! A handle's record keeps its fd and the socket's inode; the socket is really open while some
//! fd of this process (listed in /proc/self/fd) still refers to a socket with that inode (an fd
//! number alone may be reused, and a duplicated fd keeps the socket open under another number).
//! Off Linux these answer `None`.

/// The inode of the socket `fd` refers to, if it refers to a socket: `fstat`'s inode number,
/// the same N as the `socket:[N]` its /proc/self/fd entry links to. (A `readlink` of that entry
/// costs several times more: with 70 fds open under load, scanning them by readlink took a
/// fifth of `leashed serve`'s CPU.)
#[cfg(unix)]
pub fn socket_inode(fd: i32) -> Option<u64> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a `stat` into the buffer on success and touches nothing else; a
    // closed or reused fd number only makes it fail or describe another file.
    if unsafe { libc::fstat(fd, stat.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: fstat succeeded, so the buffer is initialised.
    let stat = unsafe { stat.assume_init() };
    (stat.st_mode & libc::S_IFMT == libc::S_IFSOCK).then_some(stat.st_ino)
}

#[cfg(not(unix))]
pub fn socket_inode(_fd: i32) -> Option<u64> {
    None
}

/// Whether the socket with this inode is still open in this process: as `fd`, or through any
/// other fd (a stray duplicate keeps a socket open just as well). When /proc/self/fd cannot be
/// read, the answer is "open": a check that cannot look fails closed.
pub fn socket_is_open(fd: i32, inode: u64) -> bool {
    socket_inode(fd) == Some(inode) || open_socket_inodes().map_or(true, |open| open.contains(&inode))
}

/// Every socket inode this process has open, from /proc/self/fd; an error when the directory
/// cannot be read (e.g. every fd is taken: reading it needs one), never an empty list in its
/// place, so no caller can mistake "cannot look" for "nothing open".
pub fn open_socket_inodes() -> std::io::Result<Vec<u64>> {
    let entries = std::fs::read_dir("/proc/self/fd")?;
    let mut inodes = Vec::new();
    for entry in entries {
        let entry = entry?;
        if let Some(inode) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()).and_then(socket_inode)
        {
            inodes.push(inode);
        }
    }
    Ok(inodes)
}
