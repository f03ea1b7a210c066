//! `leashed compose`: plug the embedded components into a plugin and write one component.
//! - `--for leashed` (the default): the MySQL guest goes into the plugin's leashed:mysql import;
//!   the result imports WASI and leashed:net, and runs under `leashed serve` with the audit.
//! - `--for wasi-sockets`: the wasi-sockets adapter goes into leashed:net as well; the result
//!   imports only WASI and runs on stock runtimes (`wasmtime serve`, Spin, wasmCloud). Without a
//!   component, the MySQL guest itself is composed, giving a stock leashed:mysql component.

use super::{EXIT_FAILED, EXIT_OK, usage_of};
use leashed::component::EMBEDDED_GUEST;
use leashed::compose::{Interfaces, ServablePlugin, for_wasi_sockets, servable_plugin};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ComposeArgs {
    /// The component: a plugin that imports leashed:mysql@0.2.0 and exports
    /// wasi:http/incoming-handler@0.2 (built against the `plugin` world in wit/plugin.wit); with
    /// `--for wasi-sockets`, also any component that imports leashed:net@0.2.0. Omitted with
    /// `--for wasi-sockets`: the embedded MySQL guest.
    #[arg(value_name = "COMPONENT")]
    component: Option<PathBuf>,

    /// Where to write the composed component.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,

    /// Which host the output is for: `leashed` (imports leashed:net, audited by `leashed serve`)
    /// or `wasi-sockets` (imports only WASI, for any WASI 0.2 runtime with wasi:sockets).
    #[arg(long = "for", value_name = "HOST", default_value = "leashed")]
    target: Target,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Target {
    /// leashed's own host: leashed:net stays an import, and the host audits it.
    Leashed,
    /// Stock runtimes: leashed:net is implemented over wasi:sockets inside the component.
    WasiSockets,
}

pub fn run(args: ComposeArgs) -> u8 {
    let (what, bytes) = match &args.component {
        Some(path) => {
            let what = format!("'{}'", path.display());
            match std::fs::read(path) {
                Ok(bytes) => (what, bytes),
                Err(e) => return usage_of("compose", &format!("cannot read {what}: {e}")),
            }
        }
        None if args.target == Target::WasiSockets => ("the MySQL guest".to_string(), EMBEDDED_GUEST.to_vec()),
        None => {
            return usage_of(
                "compose",
                "name the plugin to compose (only `--for wasi-sockets` composes the guest alone)",
            );
        }
    };
    let composed = match args.target {
        Target::Leashed => match servable_plugin(&bytes, &format!("plugin {what}")) {
            Ok(ServablePlugin { bytes, composed: true }) => bytes,
            Ok(ServablePlugin { composed: false, .. }) => {
                return usage_of(
                    "compose",
                    &format!("plugin {what} does not import leashed:mysql, so there is nothing to plug in"),
                );
            }
            Err(e) => return usage_of("compose", &format!("{e:#}")),
        },
        Target::WasiSockets => match for_wasi_sockets(&bytes, &what) {
            Ok(bytes) => bytes,
            Err(e) => return usage_of("compose", &format!("{e:#}")),
        },
    };
    if let Err(e) = std::fs::write(&args.output, &composed) {
        eprintln!("error: cannot write {}: {e}", args.output.display());
        return EXIT_FAILED;
    }
    let imports = Interfaces::of(&composed, "the composed component").map(|i| i.imports.join(", ")).unwrap_or_default();
    eprintln!("wrote {} ({} bytes); it imports: {imports}", args.output.display(), composed.len());
    EXIT_OK
}
