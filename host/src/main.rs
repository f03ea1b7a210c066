//! The `leashed` command line: parses the arguments and hands each subcommand to its file in
//! `cli/`. The help text of each subcommand lives here, next to its name.

mod cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: `leashed serve` allocates and frees per request from
/// every worker thread (the store, the audit's records, hyper's buffers), and glibc's arenas
/// were a twentieth of its CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "leashed",
    version,
    about = "A MySQL client that runs as a WebAssembly component on sockets this host lends it, \
             with an audit of every handle it did not release.",
    after_help = "Every run ends with an audit line on stderr: \
                  `audit: N handles lent, N released, N open`. `leashed audit` runs any component \
                  that imports leashed:net and reports every handle it did not release; \
                  `leashed serve` serves HTTP plugins with an audit per request."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run SQL on a MySQL/MariaDB server through the guest component.
    ///
    /// The guest may connect to the URL's host:port and nowhere else.
    #[command(after_help = "Examples:\n  \
        leashed query --url mysql://app:secret@127.0.0.1:3306/shop 'SELECT * FROM items'\n  \
        leashed query --url mysql://app:secret@db:3306 --format json 'SELECT 1; SELECT 2'\n  \
        leashed query --url mysql://app:secret@db:3306 --prepared --param 42 --param null 'SELECT ?, ?'\n  \
        LEASHED_URL=mysql://app@db/shop leashed query --password-file ~/.shop-password < schema.sql\n  \
        leashed query --url mysql://app@db/shop --password-file pw.txt --file report.sql | head\n\n\
        Exit status: 0 success (also when the reader of the output goes away, as with `| head`), \
        1 server/query/connection error (printed as `ERROR <code> (<sqlstate>): <message>` when the \
        server sent one) or a trap of the guest (explained in one line), 2 usage error.")]
    Query(cli::query::QueryArgs),

    /// Run any component that imports leashed:net under the leak audit.
    ///
    /// Each --invoke is one call on the same instance; after each, the handles it lent and did
    /// not give back are reported (stderr). At the end the store is torn down, everything it
    /// still held is reclaimed, and /proc/self/fd is checked to confirm every socket closed.
    #[command(after_help = "Examples:\n  \
        leashed audit plugin.wasm --allow 127.0.0.1:3306 --invoke 'run(\"127.0.0.1\", 3306)'\n  \
        leashed audit plugin.wasm --allow 10.0.0.0/8:5000-5010 --policy deferred --deny-leaks \\\n      \
        --audit-json report.json --invoke 'open()' --invoke 'close()'\n\n\
        Exit status: 0 success; 1 a call trapped; 2 usage error (bad component, export or \
        arguments); 3 with --deny-leaks, when anything leaked.")]
    Audit(cli::audit::AuditArgs),

    /// Serve an HTTP plugin (a wasi:http component), with a fresh instance and a leak audit per
    /// request.
    ///
    /// The plugin exports wasi:http/incoming-handler@0.2 and may import leashed:mysql (the
    /// embedded MySQL client is plugged in automatically), leashed:net and WASI. Every request
    /// gets a fresh instance in its own store, sockets lent under --allow, and limits on
    /// connections, handles, memory and time. When a request ends with handles still lent, the
    /// log names them with the plugin's own creation sites; they are reclaimed and their sockets
    /// checked closed in /proc/self/fd.
    #[command(after_help = cli::serve::AFTER_HELP)]
    Serve(cli::serve::ServeArgs),

    /// Plug the embedded MySQL client (and, for stock runtimes, the wasi-sockets adapter) into a
    /// plugin.
    ///
    /// By default the result imports only WASI and leashed:net, so it runs under `leashed serve`
    /// or `leashed audit` without further steps (`leashed serve` does this by itself). With
    /// `--for wasi-sockets` it imports only WASI: leashed:net is implemented over wasi:sockets
    /// inside the component, which then runs on `wasmtime serve`, Spin or wasmCloud (without the
    /// leashed audit).
    #[command(after_help = "Examples:\n  \
        leashed compose plugin.wasm -o app.wasm                      # for `leashed serve app.wasm`\n  \
        leashed compose plugin.wasm --for wasi-sockets -o app.wasm   # for `wasmtime serve -S cli,inherit-network,allow-ip-name-lookup app.wasm`\n  \
        leashed compose --for wasi-sockets -o mysql.wasm             # the MySQL client alone, for stock runtimes\n\n\
        Exit status: 0 written; 2 the component is unusable (the error says why).")]
    Compose(cli::compose::ComposeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One guest at a time needs one thread; a server spreads requests over every core.
    let mut builder = match cli.command {
        Command::Serve(_) => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(cli::EXIT_FAILED);
        }
    };
    let code = match cli.command {
        Command::Query(args) => runtime.block_on(cli::query::run(args)),
        Command::Audit(args) => runtime.block_on(cli::audit::run(args)),
        Command::Serve(args) => runtime.block_on(cli::serve::run(args)),
        Command::Compose(args) => cli::compose::run(args),
    };
    ExitCode::from(code)
}
