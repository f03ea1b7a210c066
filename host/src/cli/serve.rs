//! `leashed serve`: the command line of the plugin server ([`leashed::serve`]): flags to a
//! config, logging through tracing, the listening socket, SIGINT/SIGTERM, the final audit line.

use super::{EXIT_FAILED, EXIT_OK, parse_allowlist, seconds, usage_of};
use clap::ValueEnum;
use leashed::audit::suppress::Suppressions;
use leashed::net::parking::ParkingLimits;
use leashed::outbound_http::OutboundHttp;
use leashed::policy::{ClosePolicy, Policy};
use leashed::serve::{ClientLimits, ServeConfig, Server};
use std::path::PathBuf;
use std::sync::Arc;

pub const AFTER_HELP: &str = "\
Example:
  leashed serve items.wasm --listen 127.0.0.1:8080 --allow 127.0.0.1:3306 \\
      --env DATABASE_URL=mysql://app:secret@127.0.0.1:3306/shop --deny-leaks
  curl http://127.0.0.1:8080/items/1

Each request gets a fresh instance in its own store; nothing but parked MySQL sessions is
shared between requests. After each, the log has one line (method, path, status, handles
lent/released/leaked, sessions it parked and `parked_now`, the sessions the host holds parked
then). The final `audit:` line adds the sessions parked over the run. A request that ends with
handles still lent is logged with the audit's report (where each handle was created);
its handles are reclaimed and their sockets checked closed in /proc/self/fd. With --deny-leaks
such a request gets 500 instead of its response, when the response's body fits in 1 MiB (it is
held back until the handler returns); a longer response has gone out by then, so its leak is
logged and counted.

Limits, per request: --max-connections and --max-handles (past them connect gets
`limit-reached`), --memory-limit (past it the plugin traps: 500), --deadline (past it the plugin
is stopped: 504). Requests above --max-concurrent wait for a slot, within their deadline; one
that gets none gets 503.

Session reuse (on; --no-session-reuse turns it off): a MySQL session a request closes clean is
reset and parked, and a later request of the same plugin that opens the same session (same
server, user, password, database, TLS and setup) takes it over without connecting or logging
in. Parked sessions are closed when idle (--reuse-idle) or old (--reuse-max-age), and at exit.

Clients, limited the way public-facing servers limit them (the defaults suit one):
  --header-timeout (10 s): a request's head (request line and headers) must be complete within
    this time of the connection's start, or for later requests of the request's first byte;
    otherwise the connection is closed. Idle time between requests is not counted.
  --idle-timeout (30 s): a kept-alive connection with no byte of a next request for this long is
    closed; so is one whose client reads none of its response for this long.
  --max-client-connections (1024, never below --max-concurrent): past it the server accepts no
    new connection until one closes; new ones wait in the listen backlog.
  --body-buffer (1024 KiB): the host reads a request's body up to this size before the request
    takes a slot (one of --max-concurrent), so a slow upload ties up a buffer, never an
    instance. A longer body is handed to the plugin as a stream: what was read, then the rest
    as it arrives, still under --body-min-rate (a slower client's body is cut off: the plugin's
    read fails, and the log says why). Worst case, the buffers take --max-client-connections
    times --body-buffer of memory.
  --body-min-rate (1024 bytes/s): after a grace of 5 s, a body must keep arriving at this rate
    on average (each byte earns 1/rate s of waiting, as Apache's mod_reqtimeout counts it);
    only time spent waiting on the client counts. A client below it, or whose body has not come
    by --deadline, gets 408 and its connection is closed, before it ever took a slot.

On SIGINT or SIGTERM the server stops accepting, lets requests in flight finish within
--shutdown-timeout, cancels and reclaims the rest, prints `audit: ...` for the whole run and
exits 0.

Exit status: 0 stopped by a signal; 1 the address cannot be listened on; 2 an unusable plugin
(the error says why in one line) or a bad flag.";

#[derive(clap::Args)]
pub struct ServeArgs {
    /// The plugin (.wasm): a component exporting wasi:http/incoming-handler@0.2, importing
    /// leashed:mysql@0.2.0, leashed:net/tcp@0.2.0 and WASI at most (never leashed:net/reuse).
    #[arg(value_name = "PLUGIN")]
    plugin: PathBuf,

    /// Address to listen on (port 0 picks a free port; the log says which).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: String,

    /// Where plugins may connect: HOST:PORT, IP:PORT, CIDR:PORT or [IPV6]:PORT, where PORT may
    /// be a range LOW-HIGH. Repeatable. Without any, every connect is denied.
    #[arg(long = "allow", value_name = "ADDR")]
    allow: Vec<String>,

    /// An environment variable for the plugin: KEY=VALUE, or KEY to pass on leashed's own
    /// value. Repeatable. This is how a plugin gets its configuration (DATABASE_URL, a CA).
    #[arg(long = "env", value_name = "KEY[=VALUE]")]
    env: Vec<String>,

    /// What dropping a connection with live streams does (as in `leashed audit`).
    #[arg(long, value_name = "POLICY", default_value = "strict")]
    policy: ClosePolicy,

    /// Answer 500 instead of the plugin's response when its request leaked.
    #[arg(long)]
    deny_leaks: bool,

    /// Leaks to tolerate (LeakSanitizer-style patterns matched against creation sites, one per
    /// line; see `leashed audit --help`). Suppressed leaks are logged and counted, never refused.
    #[arg(long, value_name = "FILE")]
    suppressions: Option<PathBuf>,

    /// Most connections one request may hold at once.
    #[arg(long, value_name = "N", default_value_t = 16)]
    max_connections: usize,

    /// Most connections all requests together may hold at once (parked sessions included);
    /// past it, a plugin's connect gets `limit-reached`. Keep it below the database's
    /// max_connections (151 by default in MariaDB and MySQL), so plugins cannot lock other
    /// clients out of it.
    #[arg(long, value_name = "N", default_value_t = 128)]
    host_max_connections: usize,

    /// Most handles (connections, readers, writers) one request may hold at once.
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_handles: usize,

    /// Most linear memory one request's instance may use, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    memory_limit: usize,

    /// Longest a request may take, in seconds; then it gets 504 and its instance is stopped.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    deadline: f64,

    /// Requests handled at once; more wait for a slot (503 if none frees within the deadline).
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_concurrent: usize,

    /// Longest a client may take to send a request's head (request line and headers), in
    /// seconds, from the connection's start (its first request) or the request's first byte;
    /// then the connection is closed.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    header_timeout: f64,

    /// Close a kept-alive connection that sends no byte of a next request for this long, in
    /// seconds, and one whose client reads none of its response for this long.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    idle_timeout: f64,

    /// Most client connections open at once; past it new connections wait in the listen backlog
    /// until one closes [default: 1024, or --max-concurrent if that is more; never below it].
    #[arg(long, value_name = "N")]
    max_client_connections: Option<usize>,

    /// How much of a request body the host reads before the request takes a slot, in KiB; a
    /// longer body is streamed to the plugin (still under --body-min-rate).
    #[arg(long, value_name = "KIB", default_value_t = 1024)]
    body_buffer: usize,

    /// Slowest a request body may arrive, in bytes per second on average, after a grace of
    /// 5 s; a slower client gets 408 and its connection is closed.
    #[arg(long, value_name = "BYTES_PER_SEC", default_value_t = 1024)]
    body_min_rate: u64,

    /// Let plugins send outgoing HTTP requests (denied by default: leashed:net is the audited
    /// way out).
    #[arg(long)]
    allow_outbound_http: bool,

    /// How long shutdown waits for requests in flight before cancelling them, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    shutdown_timeout: f64,

    /// Log lines as text or as one JSON object per line (stderr).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    /// Turn session reuse off: every request's MySQL connections connect and log in anew. On
    /// (the default), a MySQL session a request closes clean is reset and parked, and a later
    /// request of the same plugin that opens the same session (same server, user, password,
    /// database, TLS and setup) takes it over without connecting.
    #[arg(long)]
    no_session_reuse: bool,

    /// Most sessions parked for one session key [default: --max-concurrent, so that every
    /// request in flight can give its session back to the next one].
    #[arg(long, value_name = "N")]
    reuse_per_key: Option<usize>,

    /// Most sessions parked in all, under any key [default: --max-concurrent]. Parked sessions
    /// also count against --host-max-connections.
    #[arg(long, value_name = "N")]
    reuse_max_parked: Option<usize>,

    /// Close a parked session idle longer than this, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    reuse_idle: f64,

    /// Close a parked session whose connection is older than this, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300.0)]
    reuse_max_age: f64,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

pub async fn run(args: ServeArgs) -> u8 {
    init_logging(args.log_format);
    let config = match config(&args) {
        Ok(config) => config,
        Err(e) => return usage_of("serve", &e),
    };
    raise_open_files_limit(&config);
    let what = format!("plugin '{}'", args.plugin.display());
    let bytes = match std::fs::read(&args.plugin) {
        Ok(bytes) => bytes,
        Err(e) => return usage_of("serve", &format!("cannot read {what}: {e}")),
    };
    let server = match Server::new(&bytes, &what, config) {
        Ok(server) => Arc::new(server),
        Err(e) => return usage_of("serve", &format!("{e:#}")),
    };
    let listener = match leashed::serve::listen(&args.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.listen);
            return EXIT_FAILED;
        }
    };
    let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| args.listen.clone());
    tracing::info!(
        composed_with_mysql_guest = server.composed,
        "serving {what} on http://{address}/ (SIGINT or SIGTERM stops)"
    );
    server.clone().run(listener, shutdown_signal()).await;
    eprintln!("{}", server.totals().snapshot());
    EXIT_OK
}

fn config(args: &ServeArgs) -> Result<ServeConfig, String> {
    let allowlist = parse_allowlist(&args.allow)?;
    let env = args.env.iter().map(|spec| env_var(spec)).collect::<Result<_, _>>()?;
    let deadline = seconds(args.deadline).ok_or("--deadline must be a positive number of seconds")?;
    let shutdown_timeout =
        seconds(args.shutdown_timeout).ok_or("--shutdown-timeout must be a positive number of seconds")?;
    let suppressions = args.suppressions.as_deref().map(Suppressions::from_file).transpose()?.unwrap_or_default();
    if args.max_concurrent == 0 {
        return Err("--max-concurrent must be at least 1".into());
    }
    if args.memory_limit == 0 || args.memory_limit > 4096 {
        return Err("--memory-limit must be between 1 and 4096 MiB".into());
    }
    if args.host_max_connections == 0 {
        return Err("--host-max-connections must be at least 1".into());
    }
    let client = client_limits(args)?;
    let session_reuse = if args.no_session_reuse {
        None
    } else {
        let per_key = args.reuse_per_key.unwrap_or(args.max_concurrent);
        if per_key == 0 {
            return Err("--reuse-per-key must be at least 1 (or turn reuse off with --no-session-reuse)".into());
        }
        let max_parked = args.reuse_max_parked.unwrap_or(args.max_concurrent);
        if max_parked == 0 {
            return Err("--reuse-max-parked must be at least 1 (or turn reuse off with --no-session-reuse)".into());
        }
        Some(ParkingLimits {
            per_key,
            max_parked,
            idle: seconds(args.reuse_idle).ok_or("--reuse-idle must be a positive number of seconds")?,
            max_age: seconds(args.reuse_max_age).ok_or("--reuse-max-age must be a positive number of seconds")?,
        })
    };
    Ok(ServeConfig {
        policy: Policy {
            close: args.policy,
            max_connections: args.max_connections,
            max_handles: args.max_handles,
            host_connections: Some(leashed::net::budget::ConnectionBudget::new(args.host_max_connections)),
            ..Policy::allowing(allowlist)
        },
        env,
        memory_limit: args.memory_limit << 20,
        deadline,
        max_concurrent: args.max_concurrent,
        deny_leaks: args.deny_leaks,
        suppressions,
        outbound_http: if args.allow_outbound_http { OutboundHttp::Allowed } else { OutboundHttp::Denied },
        shutdown_timeout,
        session_reuse,
        client,
    })
}

/// The limits on clients (`--header-timeout` … `--body-min-rate`).
fn client_limits(args: &ServeArgs) -> Result<ClientLimits, String> {
    let max_connections = match args.max_client_connections {
        None => ClientLimits::default().max_connections.max(args.max_concurrent),
        Some(n) if n < args.max_concurrent => {
            return Err(format!(
                "--max-client-connections ({n}) must be at least --max-concurrent ({}): every request runs on a connection",
                args.max_concurrent
            ));
        }
        Some(n) => n,
    };
    if args.body_buffer == 0 || args.body_buffer > 1 << 20 {
        return Err("--body-buffer must be between 1 and 1048576 KiB".into());
    }
    if args.body_min_rate == 0 {
        return Err("--body-min-rate must be at least 1 byte per second".into());
    }
    Ok(ClientLimits {
        header_timeout: seconds(args.header_timeout).ok_or("--header-timeout must be a positive number of seconds")?,
        idle_timeout: seconds(args.idle_timeout).ok_or("--idle-timeout must be a positive number of seconds")?,
        max_connections,
        body_buffer: args.body_buffer << 10,
        body_min_rate: args.body_min_rate,
    })
}

/// Raises the soft limit on open files towards the hard one when the client connections, the
/// requests' sockets and the server's own files might not fit under it; warns if they still
/// might not.
fn raise_open_files_limit(config: &ServeConfig) {
    let wanted = config.client.max_connections as u64
        + (config.max_concurrent as u64).saturating_mul(config.policy.max_connections as u64)
        + 64;
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit on a valid rlimit of this process.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 || limit.rlim_cur >= wanted {
        return;
    }
    let raised = libc::rlimit { rlim_cur: wanted.min(limit.rlim_max), rlim_max: limit.rlim_max };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        limit = raised;
    }
    if limit.rlim_cur < wanted {
        tracing::warn!(
            "the open-files limit is {}, below the {wanted} that --max-client-connections {} and --max-concurrent {} \
             times --max-connections {} may need: raise it (ulimit -n) or lower them",
            limit.rlim_cur,
            config.client.max_connections,
            config.max_concurrent,
            config.policy.max_connections
        );
    }
}

/// `KEY=VALUE`, or `KEY` for leashed's own value of KEY.
fn env_var(spec: &str) -> Result<(String, String), String> {
    match spec.split_once('=') {
        Some(("", _)) => Err(format!("--env {spec}: the name is empty")),
        Some((key, value)) => Ok((key.to_string(), value.to_string())),
        None => std::env::var(spec)
            .map(|value| (spec.to_string(), value))
            .map_err(|_| format!("--env {spec}: leashed's environment has no {spec} to pass on")),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LEASHED_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,wasmtime=warn,cranelift=warn"));
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        tracing::error!("cannot listen for SIGINT/SIGTERM; stop the server with SIGKILL");
        return std::future::pending().await;
    };
    let name = tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    };
    tracing::info!("{name} received");
}
