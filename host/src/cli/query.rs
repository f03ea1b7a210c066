//! `leashed query`: run SQL through the leashed guest on a socket this host lends it, print the
//! result sets as a table or JSON, then the audit line.

use super::query_input::{server_url, sql_text};
use super::{EXIT_FAILED, EXIT_OK, seconds, usage_of};
use clap::ValueEnum;
use leashed::bindings::{ConnectOptions, MysqlError, TlsMode};
use leashed::mysql_url::MysqlUrl;
use leashed::render::stream::{JsonStream, SetPrinter, TableStream};
use leashed::render::{json::to_json, table::to_table};
use leashed::trap_text::TrapKind;
use leashed::{Allowlist, ComponentSource, Policy, Runtime};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct QueryArgs {
    /// Server to connect to: mysql://USER:PASSWORD@HOST:PORT/DB (port defaults to 3306;
    /// percent-encode special characters in the password). Without it, $LEASHED_URL, then
    /// $DATABASE_URL. A password here is visible to every user of the machine (`ps`): prefer
    /// --password-file or the environment.
    #[arg(long, value_name = "URL")]
    url: Option<String>,

    /// Read the password from this file (its first line) instead of the URL.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,

    /// Read the SQL from this file (`-`: standard input) instead of the arguments.
    #[arg(long, short = 'f', value_name = "FILE", conflicts_with = "sql")]
    file: Option<PathBuf>,

    /// The most memory the guest may use, in MiB. A buffered result that does not fit ends the
    /// query with an error saying so, not with the machine running out of memory.
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    memory_limit: usize,

    /// How to print result sets.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,

    /// Run this component instead of the embedded leashed guest. It must export
    /// leashed:mysql/connection@0.2.0.
    #[arg(long, value_name = "PATH")]
    component: Option<PathBuf>,

    /// Give up connecting after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    connect_timeout: f64,

    /// Fail when the server sends nothing for this many seconds (default: wait as long as the
    /// query takes).
    #[arg(long, value_name = "SECS")]
    read_timeout: Option<f64>,

    /// Whether and how to use TLS (the mysql client's --ssl-mode).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = TlsModeArg::Preferred)]
    tls_mode: TlsModeArg,

    /// PEM file with the CA certificates to trust, for --tls-mode verify-ca and verify-identity.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,

    /// PEM file with the server's RSA public key, for caching_sha2_password and sha256_password
    /// without TLS (otherwise the client asks the server for it).
    #[arg(long, value_name = "FILE")]
    server_public_key: Option<PathBuf>,

    /// Let mysql_clear_password send the password without TLS.
    #[arg(long)]
    allow_cleartext_password: bool,

    /// The session's character set (SET NAMES); default utf8mb4.
    #[arg(long, value_name = "NAME")]
    charset: Option<String>,

    /// The session's collation; default: the character set's.
    #[arg(long, value_name = "NAME")]
    collation: Option<String>,

    /// Turn autocommit on or off after login (default: the server's, on).
    #[arg(long, value_name = "BOOL")]
    autocommit: Option<bool>,

    /// The session's sql_mode, e.g. '' or 'STRICT_ALL_TABLES'.
    #[arg(long, value_name = "MODE")]
    sql_mode: Option<String>,

    /// SQL to run right after login.
    #[arg(long, value_name = "SQL")]
    init_command: Option<String>,

    /// The largest packet to accept from the server, in bytes (default 64 MiB).
    #[arg(long, value_name = "BYTES")]
    max_allowed_packet: Option<u32>,

    /// Let `LOAD DATA LOCAL INFILE 'NAME'` send the file at PATH. Repeatable. Without it, LOCAL
    /// INFILE is off and the server refuses such statements.
    #[arg(long, value_name = "NAME=PATH")]
    local_infile: Vec<String>,

    /// Send the SQL as one multi-statement query and print the results once all have arrived
    /// (in the guest's memory), instead of statement by statement as the rows arrive. Needed
    /// for a compound statement (CREATE PROCEDURE … BEGIN …; … END), which the splitting at
    /// `;` would cut.
    #[arg(long, conflicts_with = "prepared")]
    buffered: bool,

    /// Run the SQL as a server-side prepared statement (binary protocol), with `?` placeholders
    /// bound to the --param values in order.
    #[arg(long)]
    prepared: bool,

    /// A value for the next `?` placeholder (with --prepared). Sent as text unless it is `null`
    /// or has a type prefix: int:-5, uint:7, float:1.5, double:2.5e-3, decimal:12.50,
    /// hex:00ff (bytes), text:... (literal text). Repeat once per placeholder.
    #[arg(long = "param", value_name = "VALUE", requires = "prepared", allow_hyphen_values = true)]
    params: Vec<String>,

    /// The SQL to run; several words are joined with spaces. Separate statements with `;` to get
    /// one result set each (not with --prepared, which runs one statement). Without it (and
    /// without --file), the SQL is read from standard input: `leashed query < schema.sql`.
    #[arg(value_name = "SQL")]
    sql: Vec<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum TlsModeArg {
    /// Plain TCP only.
    Disabled,
    /// TLS if the server offers it, without checking its certificate.
    Preferred,
    /// TLS or fail; the certificate is not checked.
    Required,
    /// TLS, with the certificate chain checked against --tls-ca.
    VerifyCa,
    /// As verify-ca, and the certificate must name the URL's host.
    VerifyIdentity,
}

impl From<TlsModeArg> for TlsMode {
    fn from(mode: TlsModeArg) -> Self {
        match mode {
            TlsModeArg::Disabled => TlsMode::Disabled,
            TlsModeArg::Preferred => TlsMode::Preferred,
            TlsModeArg::Required => TlsMode::Required,
            TlsModeArg::VerifyCa => TlsMode::VerifyCa,
            TlsModeArg::VerifyIdentity => TlsMode::VerifyIdentity,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// Boxed columns, like the mysql client.
    Table,
    /// {"results":[{"columns":[..],"rows":[..],"affected_rows":..,"last_insert_id":..,"warnings":..}]}
    Json,
}

pub async fn run(args: QueryArgs) -> u8 {
    let url = match server_url(args.url.as_deref(), args.password_file.as_deref()) {
        Ok(url) => url,
        Err(e) => return usage(&e),
    };
    let Some(connect_timeout) = seconds(args.connect_timeout) else {
        return usage("--connect-timeout must be a positive number of seconds");
    };
    let read_timeout = match args.read_timeout.map(seconds) {
        Some(None) => return usage("--read-timeout must be a positive number of seconds"),
        other => other.flatten(),
    };
    if args.memory_limit == 0 || args.memory_limit > 4096 {
        return usage("--memory-limit must be between 1 and 4096 MiB");
    }
    let params = match args.params.iter().map(|p| leashed::param::parse_param(p)).collect::<Result<Vec<_>, _>>() {
        Ok(params) => params,
        Err(e) => return usage(&e),
    };
    let text = match sql_text(&args.sql, args.file.as_deref()) {
        Ok(text) => text,
        Err(e) => return usage(&e),
    };
    let sql = Sql { text, prepared: args.prepared.then_some(params), buffered: args.buffered };
    let options = match connect_options(&url, &args) {
        Ok(options) => options,
        Err(e) => return usage(&e),
    };
    let source = args.component.clone().map(ComponentSource::File).unwrap_or(ComponentSource::Embedded);
    let runtime = match Runtime::new(&source) {
        Ok(runtime) => runtime,
        Err(e) => return usage(&format!("{e:#}")),
    };
    let policy = Policy {
        connect_timeout,
        read_timeout,
        memory_limit: Some(args.memory_limit << 20),
        capture_guest_stderr: true,
        ..Policy::allowing(Allowlist::new([url.allow_entry()]))
    };
    let mut instance = match runtime.instantiate(policy).await {
        Ok(instance) => instance,
        Err(e) => {
            eprintln!("error: {e:#}");
            return EXIT_FAILED;
        }
    };

    match run_sql(&mut instance, &url, &options, &sql, args.format).await {
        Ok(code) => {
            eprintln!("{}", instance.audit().summary());
            code
        }
        Err(Trapped { call, trap }) => {
            explain_trap(&instance, call, &trap, args.memory_limit);
            let (audit, still_open) = instance.teardown();
            let summary = audit.summary();
            match still_open.as_ref().map(Vec::len) {
                Ok(0) => eprintln!("{summary}; every socket is closed (checked in /proc/self/fd)"),
                Ok(n) => eprintln!("{summary}; HOST BUG: {n} socket(s) still open after the teardown"),
                Err(why) => eprintln!("{summary}; HOST PROBLEM: {why}"),
            }
            EXIT_FAILED
        }
    }
}

/// The URL's connect options with the command line's session and security settings.
fn connect_options(url: &MysqlUrl, args: &QueryArgs) -> Result<ConnectOptions, String> {
    let read = |path: &Option<PathBuf>, what: &str| {
        path.as_ref()
            .map(|p| std::fs::read_to_string(p).map_err(|e| format!("cannot read the {what} {}: {e}", p.display())))
            .transpose()
    };
    Ok(ConnectOptions {
        tls_mode: args.tls_mode.into(),
        tls_ca_pem: read(&args.tls_ca, "CA file")?,
        server_public_key_pem: read(&args.server_public_key, "server public key")?,
        allow_cleartext_password: args.allow_cleartext_password,
        charset: args.charset.clone(),
        collation: args.collation.clone(),
        autocommit: args.autocommit,
        sql_mode: args.sql_mode.clone(),
        init_command: args.init_command.clone(),
        max_allowed_packet: args.max_allowed_packet,
        local_infile: args.local_infile.iter().map(|spec| local_file(spec)).collect::<Result<_, _>>()?,
        ..url.connect_options()
    })
}

/// `NAME=PATH` for --local-infile: the file at PATH, offered under NAME.
fn local_file(spec: &str) -> Result<leashed::bindings::LocalFile, String> {
    let (name, path) = spec.split_once('=').ok_or_else(|| format!("--local-infile {spec}: expected NAME=PATH"))?;
    let contents = std::fs::read(path).map_err(|e| format!("--local-infile {spec}: cannot read {path}: {e}"))?;
    Ok(leashed::bindings::LocalFile { name: name.to_string(), contents })
}

/// The SQL to run, and its parameters when it runs as a prepared statement.
struct Sql {
    text: String,
    prepared: Option<Vec<leashed::bindings::Value>>,
    buffered: bool,
}

/// A call into the guest that trapped.
struct Trapped {
    call: &'static str,
    trap: wasmtime::Error,
}

/// Names the call a trap came from.
fn in_call<T>(call: &'static str, result: wasmtime::Result<T>) -> Result<T, Trapped> {
    result.map_err(|trap| Trapped { call, trap })
}

/// Opens, runs the SQL, prints, closes. Returns the exit status, or the trap that ended it.
async fn run_sql(
    instance: &mut leashed::GuestInstance,
    url: &MysqlUrl,
    options: &ConnectOptions,
    sql: &Sql,
    format: Format,
) -> Result<u8, Trapped> {
    let conn = match in_call("open", instance.open(options).await)? {
        Ok(conn) => conn,
        Err(e) => return Ok(report(&e, url)),
    };
    let code = match &sql.prepared {
        None if sql.buffered => {
            let outcome = in_call("query", instance.query(conn, &sql.text).await)?;
            print_buffered(&outcome, url, format)
        }
        None => stream_statements(instance, conn, url, &sql.text, format).await?,
        Some(params) => run_prepared(instance, conn, url, &sql.text, params, format).await?,
    };
    // A close that fails (the server already gone) changes nothing about what ran.
    let _ = in_call("close", instance.close(conn).await)?;
    Ok(code)
}

/// Rows fetched from the guest at most at a time while streaming, and at first.
const MAX_BATCH_ROWS: usize = 1_000;
const FIRST_BATCH_ROWS: usize = 16;

/// About how many bytes of values a batch should carry: the next batch's size follows the rows
/// seen so far, so rows of a megabyte each still stream within a small memory limit.
const BATCH_BYTES: usize = 1 << 20;

/// The rows to ask for next, after a batch of `rows` that took `bytes`.
fn next_batch_rows(rows: usize, bytes: usize) -> usize {
    let per_row = (bytes / rows.max(1)).max(1);
    (BATCH_BYTES / per_row).clamp(1, MAX_BATCH_ROWS)
}

/// Roughly what a row takes in memory.
fn row_bytes(row: &[leashed::bindings::Value]) -> usize {
    use leashed::bindings::Value;
    row.iter()
        .map(|v| match v {
            Value::Text(t) | Value::Decimal(t) => t.len() + 16,
            Value::Bytes(b) => b.len() + 16,
            _ => 16,
        })
        .sum()
}

/// Runs the script's statements one by one, printing each result's rows as they arrive (in
/// bounded memory, as `mysql --quick` does). Stops at the first failing statement.
async fn stream_statements(
    instance: &mut leashed::GuestInstance,
    conn: leashed::MysqlHandle,
    url: &MysqlUrl,
    script: &str,
    format: Format,
) -> Result<u8, Trapped> {
    let stdout = std::io::stdout().lock();
    let mut printer: Box<dyn SetPrinter> = match format {
        Format::Table => Box::new(TableStream::new(stdout)),
        Format::Json => match JsonStream::new(stdout) {
            Ok(printer) => Box::new(printer),
            Err(e) => return Ok(output_failed(&e)),
        },
    };
    let mut failure = None;
    let mut printed = Ok(());
    for statement in leashed::sql_split::statements(script) {
        let stream = match in_call("query-stream", instance.query_stream(conn, statement).await)? {
            Ok(stream) => stream,
            Err(error) => {
                failure = Some(error);
                break;
            }
        };
        let columns = in_call("row-stream.columns", instance.stream_columns(stream).await)?;
        printed = printer.begin_set(&columns);
        let mut batch = FIRST_BATCH_ROWS;
        while printed.is_ok() {
            match in_call("next-batch", instance.next_batch(stream, batch as u32).await)? {
                Ok(rows) if rows.is_empty() => break,
                Ok(rows) => {
                    batch = next_batch_rows(rows.len(), rows.iter().map(|r| row_bytes(r)).sum());
                    printed = printer.rows(&rows);
                }
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        let outcome = in_call("row-stream.outcome", instance.stream_outcome(stream).await)?;
        // Reads and drops what is left when the output went away; its own error adds nothing.
        let _ = in_call("row-stream.close", instance.close_stream(stream).await)?;
        if printed.is_ok() {
            printed = printer.end_set(outcome.as_ref());
        }
        if failure.is_some() || printed.is_err() {
            break;
        }
    }
    if printed.is_ok() {
        printed = printer.finish();
    }
    Ok(match (printed, failure) {
        (Err(e), _) => output_failed(&e),
        (Ok(()), Some(error)) => report(&error, url),
        (Ok(()), None) => EXIT_OK,
    })
}

/// A prepared statement: its result is buffered (the binary protocol's rows come back whole).
async fn run_prepared(
    instance: &mut leashed::GuestInstance,
    conn: leashed::MysqlHandle,
    url: &MysqlUrl,
    sql: &str,
    params: &[leashed::bindings::Value],
    format: Format,
) -> Result<u8, Trapped> {
    let outcome = match in_call("prepare", instance.prepare(conn, sql).await)? {
        Ok(stmt) => {
            let outcome = in_call("execute", instance.execute(stmt, params).await)?;
            // Its own error changes nothing: the execute's outcome is what is reported.
            let _ = in_call("statement close", instance.close_statement(stmt).await)?;
            outcome
        }
        Err(error) => Err(leashed::bindings::QueryError { completed: Vec::new(), error }),
    };
    Ok(print_buffered(&outcome, url, format))
}

/// Prints whole result sets (and the error after them, if a statement failed).
fn print_buffered(
    outcome: &Result<Vec<leashed::bindings::ResultSet>, leashed::bindings::QueryError>,
    url: &MysqlUrl,
    format: Format,
) -> u8 {
    let (sets, failure) = match outcome {
        Ok(sets) => (&sets[..], None),
        Err(failure) => (&failure.completed[..], Some(&failure.error)),
    };
    match (print_results(sets, format), failure) {
        (Err(e), _) => output_failed(&e),
        (Ok(()), Some(error)) => report(error, url),
        (Ok(()), None) => EXIT_OK,
    }
}

/// The exit status when the output cannot be written: quiet success when its reader went away
/// (`| head`), as other Unix tools do; an error otherwise.
fn output_failed(e: &std::io::Error) -> u8 {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        return EXIT_OK;
    }
    eprintln!("error: cannot write the results: {e}");
    EXIT_FAILED
}

fn print_results(sets: &[leashed::bindings::ResultSet], format: Format) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match format {
        Format::Table => write!(out, "{}", to_table(sets))?,
        Format::Json => writeln!(out, "{}", to_json(sets))?,
    }
    out.flush()
}

/// Says in one line why the guest trapped: which call, and what kind of trap. The guest's own
/// stderr (a panic message) follows when it says more than the explanation.
fn explain_trap(instance: &leashed::GuestInstance, call: &str, trap: &wasmtime::Error, limit_mib: usize) {
    let guest_said = instance.guest_stderr();
    match leashed::trap_text::classify(trap, instance.memory_limit_hit(), &guest_said) {
        // Streamed: a single row, or the guest's own working set, is what did not fit.
        TrapKind::MemoryLimit if matches!(call, "next-batch" | "query-stream") => {
            eprintln!("error: a row does not fit in the guest's memory limit ({limit_mib} MiB); raise --memory-limit")
        }
        TrapKind::MemoryLimit => eprintln!(
            "error: the result does not fit in the guest's memory limit ({limit_mib} MiB); add a LIMIT, or \
             raise --memory-limit (the `{call}` call was stopped; prepared results are not streamed)"
        ),
        kind => {
            eprintln!("error: the guest trapped in its `{call}` call: {kind}");
            if matches!(kind, TrapKind::Panic(Some(_))) {
                return; // the explanation already holds the panic's place and message
            }
            for line in guest_said.lines().filter(|l| !l.trim().is_empty()) {
                eprintln!("  guest: {line}");
            }
        }
    }
}

/// Prints a guest-reported error (the server's own the way the mysql client does, the rest
/// naming the server), and returns the exit status.
fn report(error: &MysqlError, url: &MysqlUrl) -> u8 {
    eprintln!("{}", leashed::error_text::describe(error, &format!("{}:{}", url.host, url.port)));
    EXIT_FAILED
}

fn usage(message: &str) -> u8 {
    usage_of("query", message)
}
