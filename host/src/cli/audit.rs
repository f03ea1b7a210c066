//! `leashed audit`: run any component that imports leashed:net under the leak audit, one report
//! per `--invoke`, then tear the store down and check every socket closed with the OS.

use super::{EXIT_FAILED, EXIT_LEAKED, EXIT_OK, parse_allowlist, usage_of};
use leashed::audit::suppress::Suppressions;
use leashed::trap_text::TrapKind;
use leashed::{AuditedComponent, ClosePolicy, ComponentSource, Policy};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct AuditArgs {
    /// The component (.wasm) to run. It may import WASI p2 and leashed:net@0.2.0, nothing else.
    #[arg(value_name = "COMPONENT")]
    component: PathBuf,

    /// An export to call, with WAVE-encoded arguments: `run("127.0.0.1", 3306)`, or
    /// `my:pkg/iface#run(...)` for an interface export. Repeat for several calls.
    #[arg(long = "invoke", value_name = "CALL", required = true)]
    invoke: Vec<String>,

    /// Where the component may connect: HOST:PORT, IP:PORT, CIDR:PORT or [IPV6]:PORT, where PORT
    /// may be a range LOW-HIGH. Repeatable. Without any, every connect is denied.
    #[arg(long = "allow", value_name = "ADDR")]
    allow: Vec<String>,

    /// What dropping a connection with live streams does: strict traps; deferred keeps the socket
    /// open until the last stream is dropped (Python's makefile); reclaim closes it at once.
    #[arg(long, value_name = "POLICY", default_value = "strict")]
    policy: ClosePolicy,

    /// Exit with status 3 if anything leaked (suppressed leaks excepted).
    #[arg(long)]
    deny_leaks: bool,

    /// Leaks to tolerate, as LeakSanitizer's suppressions: one pattern per line (`leak:PATTERN`
    /// or `PATTERN`, `*` as wildcard, `#` comments), matched against the frames of a leaked
    /// handle's creation site. Suppressed leaks are still shown and counted.
    #[arg(long, value_name = "FILE")]
    suppressions: Option<PathBuf>,

    /// Also write the audit as JSON (schema in the README) to this file.
    #[arg(long, value_name = "FILE")]
    audit_json: Option<PathBuf>,

    /// Most connections open at once; past it, connect gets `limit-reached`.
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_connections: usize,

    /// Most handles (connections, readers, writers) lent at once.
    #[arg(long, value_name = "N", default_value_t = 256)]
    max_handles: usize,
}

pub async fn run(args: AuditArgs) -> u8 {
    let allowlist = match parse_allowlist(&args.allow) {
        Ok(allowlist) => allowlist,
        Err(e) => return usage_of("audit", &e),
    };
    let suppressions = match args.suppressions.as_deref().map(Suppressions::from_file).transpose() {
        Ok(suppressions) => suppressions.unwrap_or_default(),
        Err(e) => return usage_of("audit", &e),
    };
    let component = match AuditedComponent::new(&ComponentSource::File(args.component.clone())) {
        Ok(component) => component,
        Err(e) => return usage_of("audit", &format!("{e:#}")),
    };
    let policy = Policy {
        close: args.policy,
        max_connections: args.max_connections,
        max_handles: args.max_handles,
        capture_guest_stderr: true,
        ..Policy::allowing(allowlist)
    };
    let mut instance = match component.instantiate(policy).await {
        Ok(instance) => instance,
        Err(e) => {
            eprintln!("error: {e:#}");
            return EXIT_FAILED;
        }
    };

    let mut leaked = false;
    let mut trapped = false;
    let mut calls_json = Vec::new();
    for invocation in &args.invoke {
        if trapped {
            eprintln!("skipped `{invocation}`: the instance trapped, so it cannot be entered again");
            continue;
        }
        let mut outcome = match instance.invoke(invocation).await {
            Ok(outcome) => outcome,
            Err(e) => return usage_of("audit", &format!("{e:#}")),
        };
        // The guest's stderr is captured to tell a trap's kind; it is passed on as it was.
        eprint!("{}", outcome.guest_stderr);
        let result = match (&outcome.result, &outcome.trap_kind) {
            (Ok(values), _) => {
                println!("{invocation} -> {}", values.join(", "));
                serde_json::json!({ "ok": values })
            }
            (Err(trap), kind) => {
                trapped = true;
                let kind = kind.clone().unwrap_or(TrapKind::Bug(trap.root_cause().to_string()));
                println!("{invocation} trapped: {kind}");
                serde_json::json!({ "trap": trap.root_cause().to_string(), "trap_kind": kind.name() })
            }
        };
        outcome.report.suppress(&suppressions);
        eprint!("{}", outcome.report.to_text());
        leaked |= !outcome.report.is_clean();
        calls_json.push(serde_json::json!({ "call": outcome.call.0, "invocation": invocation, "result": result, "report": outcome.report.to_json() }));
    }

    let mut teardown = instance.teardown();
    teardown.report.suppress(&suppressions);
    let summary = teardown.audit.summary();
    eprint!("{}", teardown.report.to_text());
    leaked |= !teardown.report.is_clean();
    if let Some(why) = &teardown.os_unreadable {
        eprintln!("HOST PROBLEM: after teardown, {why}");
    } else if teardown.still_open.is_empty() {
        eprintln!("teardown: every socket is closed (checked against /proc/self/fd)");
    } else {
        for m in &teardown.still_open {
            eprintln!(
                "HOST BUG: after teardown the socket of connection #{} (fd {}) is still open",
                m.connection, m.fd
            );
        }
    }
    // After teardown nothing is open; what the host had to reclaim is said as such, with the
    // OS's word that those sockets are closed.
    let closed = if summary.reclaimed > 0 && teardown.still_open.is_empty() && teardown.os_unreadable.is_none() {
        " (their sockets are closed)"
    } else {
        ""
    };
    eprintln!("{summary}{closed}");

    if let Some(path) = &args.audit_json {
        let doc = serde_json::json!({
            "calls": calls_json,
            "store": teardown.report.to_json(),
            "teardown": { "sockets_still_open": teardown.still_open, "os_unreadable": teardown.os_unreadable },
            "summary": { "lent": summary.lent, "released": summary.released, "open": summary.open, "reclaimed": summary.reclaimed },
        });
        let text = serde_json::to_string_pretty(&doc).expect("JSON of owned data");
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("error: cannot write {}: {e}", path.display());
            return EXIT_FAILED;
        }
    }
    if args.deny_leaks && (leaked || !teardown.still_open.is_empty() || teardown.os_unreadable.is_some()) {
        EXIT_LEAKED
    } else if trapped {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}
