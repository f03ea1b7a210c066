//! `leashed compose`: plug the embedded MySQL guest into a plugin's leashed:mysql import and
//! write the result, a component that imports only WASI and leashed:net.

use super::{EXIT_FAILED, EXIT_OK, usage_of};
use leashed::compose::{Interfaces, ServablePlugin, servable_plugin};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ComposeArgs {
    /// The plugin (.wasm): a component that imports leashed:mysql@0.1.0 and exports
    /// wasi:http/incoming-handler@0.2 (built against the `plugin` world in wit/plugin.wit).
    #[arg(value_name = "PLUGIN")]
    plugin: PathBuf,

    /// Where to write the composed component.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
}

pub fn run(args: ComposeArgs) -> u8 {
    let what = format!("plugin '{}'", args.plugin.display());
    let bytes = match std::fs::read(&args.plugin) {
        Ok(bytes) => bytes,
        Err(e) => return usage_of("compose", &format!("cannot read {what}: {e}")),
    };
    let composed = match servable_plugin(&bytes, &what) {
        Ok(ServablePlugin { bytes, composed: true }) => bytes,
        Ok(ServablePlugin { composed: false, .. }) => {
            return usage_of(
                "compose",
                &format!("{what} does not import leashed:mysql, so there is nothing to plug in"),
            );
        }
        Err(e) => return usage_of("compose", &format!("{e:#}")),
    };
    if let Err(e) = std::fs::write(&args.output, &composed) {
        eprintln!("error: cannot write {}: {e}", args.output.display());
        return EXIT_FAILED;
    }
    let imports = Interfaces::of(&composed, "the composed component").map(|i| i.imports.join(", ")).unwrap_or_default();
    eprintln!("wrote {} ({} bytes); it imports: {imports}", args.output.display(), composed.len());
    EXIT_OK
}
