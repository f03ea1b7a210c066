//! The native `mysql` crate's connection options, shared by every benchmark that measures it.

use leashed::mysql_url::MysqlUrl;

/// Options for the native client on `url`, over TCP with Nagle off, as leashed's lent sockets.
/// `prefer_socket(false)`: by default the crate, told 127.0.0.1, asks the server for `@@socket`
/// and moves to that Unix socket, which skips the TCP stack leashed goes through (every native
/// row before 2026-12-06 was measured that way).
pub fn native_opts(url: &MysqlUrl) -> mysql::Opts {
    mysql::OptsBuilder::new()
        .prefer_socket(false)
        .ip_or_hostname(Some(url.host.clone()))
        .tcp_port(url.port)
        .user(Some(url.user.clone()))
        .pass(url.password.clone())
        .db_name(url.database.clone())
        .tcp_nodelay(true)
        .into()
}
