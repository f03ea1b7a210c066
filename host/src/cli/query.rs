//! `leashed query`: run SQL through the leashed guest on a socket this host lends it, print the
//! result sets as a table or JSON, then the audit line.

use super::{EXIT_FAILED, EXIT_OK, seconds, usage_of};
use clap::ValueEnum;
use leashed::bindings::{ConnectOptions, ErrorCode, MysqlError, ServerError, TlsMode};
use leashed::mysql_url::MysqlUrl;
use leashed::render::{json::to_json, table::to_table};
use leashed::{Allowlist, ComponentSource, Policy, Runtime};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct QueryArgs {
    /// Server to connect to: mysql://USER:PASSWORD@HOST:PORT/DB (port defaults to 3306;
    /// percent-encode special characters in the password).
    #[arg(long, value_name = "URL")]
    url: String,

    /// How to print result sets.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,

    /// Run this component instead of the embedded leashed guest. It must export
    /// leashed:mysql/connection@0.1.0.
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
    /// one result set each (not with --prepared, which runs one statement).
    #[arg(required = true, value_name = "SQL")]
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
    let url = match MysqlUrl::parse(&args.url) {
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
    let params = match args.params.iter().map(|p| leashed::param::parse_param(p)).collect::<Result<Vec<_>, _>>() {
        Ok(params) => params,
        Err(e) => return usage(&e),
    };
    let sql = Sql { text: args.sql.join(" "), prepared: args.prepared.then_some(params) };
    let options = match connect_options(&url, &args) {
        Ok(options) => options,
        Err(e) => return usage(&e),
    };
    let source = args.component.map(ComponentSource::File).unwrap_or(ComponentSource::Embedded);
    let runtime = match Runtime::new(&source) {
        Ok(runtime) => runtime,
        Err(e) => return usage(&format!("{e:#}")),
    };
    let policy = Policy { connect_timeout, read_timeout, ..Policy::allowing(Allowlist::new([url.allow_entry()])) };
    let mut instance = match runtime.instantiate(policy).await {
        Ok(instance) => instance,
        Err(e) => {
            eprintln!("error: {e:#}");
            return EXIT_FAILED;
        }
    };

    let code = run_sql(&mut instance, &url, &options, &sql, args.format).await;
    eprintln!("{}", instance.audit().summary());
    code
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
}

/// Opens, runs the SQL, prints, closes. Returns the exit status.
async fn run_sql(
    instance: &mut leashed::GuestInstance,
    url: &MysqlUrl,
    options: &ConnectOptions,
    sql: &Sql,
    format: Format,
) -> u8 {
    let conn = match instance.open(options).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return report(&e, url),
        Err(trap) => return trapped(&trap),
    };
    let outcome = match &sql.prepared {
        None => instance.query(conn, &sql.text).await,
        Some(params) => match instance.prepare(conn, &sql.text).await {
            Ok(Ok(stmt)) => {
                let outcome = instance.execute(stmt, params).await;
                match instance.close_statement(stmt).await {
                    Ok(_) => outcome,
                    Err(trap) => Err(trap),
                }
            }
            Ok(Err(error)) => Ok(Err(leashed::bindings::QueryError { completed: Vec::new(), error })),
            Err(trap) => Err(trap),
        },
    };
    let code = match outcome {
        Ok(Ok(sets)) => {
            print_results(&sets, format);
            EXIT_OK
        }
        Ok(Err(failure)) => {
            print_results(&failure.completed, format);
            report(&failure.error, url)
        }
        Err(trap) => return trapped(&trap),
    };
    match instance.close(conn).await {
        Ok(_) => code,
        Err(trap) => trapped(&trap),
    }
}

fn print_results(sets: &[leashed::bindings::ResultSet], format: Format) {
    match format {
        Format::Table => print!("{}", to_table(sets)),
        Format::Json => println!("{}", to_json(sets)),
    }
}

/// Prints a guest-reported error the way the mysql client does, and returns the exit status.
fn report(error: &MysqlError, url: &MysqlUrl) -> u8 {
    let server = |e: &ServerError| eprintln!("ERROR {} ({}): {}", e.code, e.sql_state, e.message);
    match error {
        MysqlError::Server(e) | MysqlError::Auth(e) => server(e),
        MysqlError::Io(ErrorCode::Denied) => {
            eprintln!("error: connecting to {}:{} was denied by the host's allowlist", url.host, url.port)
        }
        MysqlError::Io(code) => eprintln!("error: cannot talk to {}:{}: {}", url.host, url.port, describe(code)),
        MysqlError::Protocol(what) => eprintln!("error: protocol error: {what}"),
        MysqlError::Invalid(what) => eprintln!("error: {what}"),
        MysqlError::Closed => eprintln!("error: the connection is closed"),
    }
    EXIT_FAILED
}

fn describe(code: &ErrorCode) -> String {
    match code {
        ErrorCode::Denied => "denied by the allowlist".into(),
        ErrorCode::LimitReached => "the host's connection limit is reached".into(),
        ErrorCode::NameUnresolvable => "the host name does not resolve".into(),
        ErrorCode::ConnectionRefused => "connection refused".into(),
        ErrorCode::ConnectionReset => "the connection was reset or closed by the server".into(),
        ErrorCode::TimedOut => "timed out".into(),
        ErrorCode::Closed => "the connection is closed".into(),
        ErrorCode::InvalidState => "invalid socket state".into(),
        ErrorCode::Tls(why) => format!("TLS failed: {why}"),
        ErrorCode::Other(text) => text.clone(),
    }
}

fn trapped(trap: &wasmtime::Error) -> u8 {
    eprintln!("error: the guest trapped: {}", trap.root_cause());
    EXIT_FAILED
}

fn usage(message: &str) -> u8 {
    usage_of("query", message)
}
