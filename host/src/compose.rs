//! Plugging components together in-process (wac-graph):
//! - for leashed's host: a plugin that imports leashed:mysql gets the embedded MySQL guest
//!   plugged into that import, so the result imports only WASI and leashed:net;
//! - for stock runtimes (`--for wasi-sockets`): the embedded wasi-sockets adapter is plugged into
//!   leashed:net as well, so the result imports only WASI.
//!
//! Also what `serve` and `compose` check first: a component's imports and exports, with an error
//! that says what is wrong in one line.

use crate::component::{EMBEDDED_GUEST, EMBEDDED_WASI_SOCKETS_ADAPTER};
use wac_graph::{CompositionGraph, EncodeOptions, NodeKind, types::Package};
use wasmtime::{bail, format_err};

/// The leashed:mysql version the embedded guest exports; a plugin must import a compatible one.
pub const MYSQL_VERSION: &str = "0.2.0";
/// The leashed:net version this host provides.
pub const NET_VERSION: &str = "0.2.0";
/// The contract's socket interface, which the wasi-sockets adapter exports.
const NET_TCP: &str = "leashed:net/tcp@0.2.0";
/// Session reuse: only the MySQL guest that leashed composes itself may import it.
pub const NET_REUSE: &str = "leashed:net/reuse";
/// The export that makes a component an HTTP handler.
pub const INCOMING_HANDLER: &str = "wasi:http/incoming-handler";

/// A component's imported and exported names, e.g. `wasi:http/types@0.2.12`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interfaces {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

impl Interfaces {
    /// Reads the names a component imports and exports, without compiling it.
    pub fn of(bytes: &[u8], what: &str) -> wasmtime::Result<Self> {
        if !bytes.starts_with(b"\0asm") {
            bail!("{what} is not a WebAssembly file");
        }
        // Bytes 6..8 are the layer: 0 for a core module, 1 for a component.
        if bytes.get(6..8) != Some(&[0x01, 0x00][..]) {
            bail!("{what} is a core WebAssembly module, not a component (build it for wasm32-wasip2)");
        }
        let mut graph = CompositionGraph::new();
        let package = Package::from_bytes(what, None, bytes.to_vec(), graph.types_mut())
            .map_err(|e| format_err!("{what} is not a valid component: {e:#}"))?;
        let world = &graph.types()[package.ty()];
        Ok(Interfaces {
            imports: world.imports.keys().cloned().collect(),
            exports: world.exports.keys().cloned().collect(),
        })
    }

    /// Whether any import is from leashed:mysql (of any version).
    pub fn imports_mysql(&self) -> bool {
        self.imports.iter().any(|name| package_of(name) == "leashed:mysql")
    }

    /// Whether it exports `wasi:http/incoming-handler` at a 0.2 version.
    pub fn exports_incoming_handler(&self) -> bool {
        self.exports.iter().any(|name| interface_of(name) == INCOMING_HANDLER && version_of(name).starts_with("0.2."))
    }
}

/// Checks that `plugin` is a plugin leashed can serve: it exports a wasi:http 0.2 incoming
/// handler, and imports nothing but WASI, leashed:net/tcp@0.2 and leashed:mysql@0.2. Session
/// reuse (leashed:net/reuse) is refused: a parked socket outlives the request, so only the MySQL
/// guest that leashed plugs in itself may park and resume; a plugin that imports it, or a
/// component composed elsewhere with a MySQL guest that does, could hold sockets past its
/// request and take over other requests' sessions.
pub fn check_plugin(interfaces: &Interfaces, what: &str) -> wasmtime::Result<()> {
    if !interfaces.exports_incoming_handler() {
        bail!(
            "{what} exports no `{INCOMING_HANDLER}@0.2.x` (it exports: {}); build it against the `leashed:mysql/plugin` world in wit/plugin.wit",
            list_or_nothing(&interfaces.exports)
        );
    }
    if let Some(name) = interfaces.imports.iter().find(|name| interface_of(name) == NET_REUSE) {
        bail!(
            "{what} imports `{name}` (session reuse), which leashed serve offers only to the MySQL guest it plugs in \
             itself: a plugin must not park or resume sockets. Build the plugin against leashed:mysql (wit/plugin.wit) \
             and serve it uncomposed; leashed composes it with its own guest"
        );
    }
    for name in &interfaces.imports {
        let package = package_of(name);
        let version = version_of(name);
        let wanted = match package {
            "leashed:mysql" => MYSQL_VERSION,
            "leashed:net" => NET_VERSION,
            _ if package.starts_with("wasi:") => continue,
            _ => bail!(
                "{what} imports `{name}`, which leashed cannot provide (it provides WASI 0.2, wasi:http, leashed:net@{NET_VERSION} and leashed:mysql@{MYSQL_VERSION})"
            ),
        };
        if !semver_compatible(version, wanted) {
            bail!(
                "{what} imports `{name}`, but this leashed provides {package}@{wanted}; rebuild the plugin against this leashed's wit/"
            );
        }
    }
    Ok(())
}

/// A plugin ready to compile: checked, and composed with the MySQL guest if it imports
/// leashed:mysql.
pub struct ServablePlugin {
    pub bytes: Vec<u8>,
    /// Whether the MySQL guest was plugged in.
    pub composed: bool,
}

/// Checks `plugin` ([`check_plugin`]) and plugs the MySQL guest into it when it imports
/// leashed:mysql; a plugin that does not (already composed, or using leashed:net alone) is
/// served as it is.
pub fn servable_plugin(plugin: &[u8], what: &str) -> wasmtime::Result<ServablePlugin> {
    let interfaces = Interfaces::of(plugin, what)?;
    check_plugin(&interfaces, what)?;
    if interfaces.imports_mysql() {
        Ok(ServablePlugin { bytes: plug_mysql_guest(plugin, what)?, composed: true })
    } else {
        Ok(ServablePlugin { bytes: plugin.to_vec(), composed: false })
    }
}

/// Plugs the embedded MySQL guest into `plugin`'s leashed:mysql imports. The result imports what
/// the plugin imported, less leashed:mysql, plus what the guest imports (WASI, leashed:net).
pub fn plug_mysql_guest(plugin: &[u8], what: &str) -> wasmtime::Result<Vec<u8>> {
    plug(EMBEDDED_GUEST, "leashed:mysql-guest", plugin, what)
}

/// Makes `component` runnable on a stock WASI 0.2 runtime: plugs the MySQL guest into its
/// leashed:mysql imports (if any), then the wasi-sockets adapter into leashed:net. `component`
/// may be a plugin, a plugin already composed for leashed, or the MySQL guest itself; the result
/// imports only `wasi:*` interfaces.
pub fn for_wasi_sockets(component: &[u8], what: &str) -> wasmtime::Result<Vec<u8>> {
    let interfaces = Interfaces::of(component, what)?;
    for name in &interfaces.imports {
        let package = package_of(name);
        let wanted = match package {
            "leashed:mysql" => MYSQL_VERSION,
            "leashed:net" => NET_VERSION,
            _ if package.starts_with("wasi:") => continue,
            _ => bail!("{what} imports `{name}`, which no stock WASI runtime provides"),
        };
        if !semver_compatible(version_of(name), wanted) {
            bail!(
                "{what} imports `{name}`, but this leashed composes {package}@{wanted}; rebuild it against this leashed's wit/"
            );
        }
    }
    let with_mysql = if interfaces.imports_mysql() { plug_mysql_guest(component, what)? } else { component.to_vec() };
    if !Interfaces::of(&with_mysql, what)?.imports.iter().any(|name| package_of(name) == "leashed:net") {
        bail!("{what} imports neither leashed:mysql nor leashed:net, so there is nothing to adapt");
    }
    // A MySQL client for others to import (the guest itself) also exports the adapter's
    // leashed:net/tcp: its error codes are part of leashed:mysql's types, so a component that
    // imports leashed:mysql imports leashed:net/tcp too, and one plug must satisfy both.
    let exports_mysql = interfaces.exports.iter().any(|name| package_of(name) == "leashed:mysql");
    let re_export = if exports_mysql { Some(NET_TCP) } else { None };
    let stock =
        plug_exporting(EMBEDDED_WASI_SOCKETS_ADAPTER, "leashed:wasi-sockets-adapter", &with_mysql, what, re_export)?;
    let left: Vec<String> = Interfaces::of(&stock, "the composed component")?
        .imports
        .into_iter()
        .filter(|n| !n.starts_with("wasi:"))
        .collect();
    if !left.is_empty() {
        bail!("composing {what} for wasi:sockets left imports no stock runtime provides: {}", left.join(", "));
    }
    Ok(stock)
}

/// Plugs the exports of `plug_bytes` into the matching imports of `socket_bytes`, and encodes the
/// composition (validated) as one component that exports what the socket exports.
pub fn plug(plug_bytes: &[u8], plug_name: &str, socket_bytes: &[u8], what: &str) -> wasmtime::Result<Vec<u8>> {
    plug_exporting(plug_bytes, plug_name, socket_bytes, what, None)
}

/// [`plug`], and the composition also exports the plug's export `re_export`.
fn plug_exporting(
    plug_bytes: &[u8],
    plug_name: &str,
    socket_bytes: &[u8],
    what: &str,
    re_export: Option<&str>,
) -> wasmtime::Result<Vec<u8>> {
    let mut graph = CompositionGraph::new();
    let plug = Package::from_bytes(plug_name, None, plug_bytes.to_vec(), graph.types_mut())
        .map_err(|e| format_err!("reading {plug_name}: {e:#}"))?;
    let socket = Package::from_bytes("leashed:plugin", None, socket_bytes.to_vec(), graph.types_mut())
        .map_err(|e| format_err!("{what} is not a valid component: {e:#}"))?;
    let plug = graph.register_package(plug).map_err(|e| format_err!("registering {plug_name}: {e:#}"))?;
    let socket = graph.register_package(socket).map_err(|e| format_err!("registering {what}: {e:#}"))?;
    wac_graph::plug(&mut graph, vec![plug], socket).map_err(|e| match e {
        wac_graph::PlugError::NoPlugHappened => format_err!("{what} imports nothing that {plug_name} exports"),
        other => format_err!("plugging {plug_name} into {what}: {:#}", error_chain(&other)),
    })?;
    if let Some(name) = re_export {
        let instance = graph
            .node_ids()
            .find(|&id| graph[id].package() == Some(plug) && matches!(graph[id].kind(), NodeKind::Instantiation(_)))
            .ok_or_else(|| format_err!("{plug_name} was not instantiated in {what}"))?;
        let export = graph
            .alias_instance_export(instance, name)
            .map_err(|e| format_err!("{plug_name} does not export {name}: {:#}", error_chain(&e)))?;
        graph.export(export, name).map_err(|e| format_err!("exporting {name}: {:#}", error_chain(&e)))?;
    }
    graph
        .encode(EncodeOptions::default())
        .map_err(|e| format_err!("encoding {plug_name} plugged into {what}: {:#}", error_chain(&e)))
}

/// `a:b/c@1.2.3` → `a:b`.
fn package_of(name: &str) -> &str {
    name.split_once('/').map_or(name.split('@').next().unwrap_or(name), |(package, _)| package)
}

/// `a:b/c@1.2.3` → `a:b/c`.
fn interface_of(name: &str) -> &str {
    name.split('@').next().unwrap_or(name)
}

/// `a:b/c@1.2.3` → `1.2.3` (empty when unversioned).
fn version_of(name: &str) -> &str {
    name.split_once('@').map_or("", |(_, version)| version)
}

/// Whether a component importing `have` accepts a provider of `want`: the same major version,
/// and for 0.x the same minor (Cargo's rule, which the component model's semver matching uses).
fn semver_compatible(have: &str, want: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64)> {
        let mut parts = v.split('.');
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    };
    match (parse(have), parse(want)) {
        (Some((0, a)), Some((0, b))) => a == b,
        (Some((a, _)), Some((b, _))) => a == b,
        _ => false,
    }
}

fn list_or_nothing(names: &[String]) -> String {
    if names.is_empty() { "nothing".into() } else { names.join(", ") }
}

/// An error with its sources, one after another.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interfaces(imports: &[&str], exports: &[&str]) -> Interfaces {
        Interfaces {
            imports: imports.iter().map(|s| s.to_string()).collect(),
            exports: exports.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// A plugin built against this leashed's WIT passes.
    #[test]
    fn a_plugin_of_this_version_is_accepted() {
        let plugin = interfaces(
            &["wasi:io/streams@0.2.12", "leashed:mysql/types@0.2.0", "leashed:mysql/connection@0.2.0"],
            &["wasi:http/incoming-handler@0.2.0"],
        );
        check_plugin(&plugin, "plugin").unwrap();
        assert!(plugin.imports_mysql());
    }

    /// Another leashed:mysql version is refused with both versions named.
    #[test]
    fn another_mysql_version_is_refused() {
        let plugin = interfaces(&["leashed:mysql/connection@0.1.0"], &["wasi:http/incoming-handler@0.2.12"]);
        let error = check_plugin(&plugin, "plugin").unwrap_err().to_string();
        assert!(error.contains("leashed:mysql/connection@0.1.0") && error.contains("leashed:mysql@0.2.0"), "{error}");
    }

    /// A plugin (or a component composed elsewhere) that imports session reuse is refused,
    /// whatever else it imports.
    #[test]
    fn a_plugin_importing_session_reuse_is_refused() {
        for imports in [
            &["leashed:net/tcp@0.2.0", "leashed:net/reuse@0.2.0"][..],
            &["leashed:mysql/connection@0.2.0", "leashed:net/reuse@0.2.0"][..],
            &["leashed:net/reuse@0.2.1"][..],
        ] {
            let plugin = interfaces(imports, &["wasi:http/incoming-handler@0.2.12"]);
            let error = check_plugin(&plugin, "plugin 'p'").unwrap_err().to_string();
            assert!(error.contains("imports `leashed:net/reuse@") && error.contains("session reuse"), "{error}");
        }
    }

    /// An import leashed cannot provide is named.
    #[test]
    fn a_foreign_import_is_refused() {
        let plugin = interfaces(&["acme:kv/store@1.0.0"], &["wasi:http/incoming-handler@0.2.12"]);
        let error = check_plugin(&plugin, "plugin").unwrap_err().to_string();
        assert!(error.contains("acme:kv/store@1.0.0"), "{error}");
    }

    /// A component that is not an HTTP handler is refused.
    #[test]
    fn no_incoming_handler_is_refused() {
        let plugin = interfaces(&[], &["run"]);
        let error = check_plugin(&plugin, "plugin").unwrap_err().to_string();
        assert!(error.contains("exports no `wasi:http/incoming-handler@0.2.x`"), "{error}");
    }

    /// A file that is no component is named as such, in one line.
    #[test]
    fn not_a_component_is_said_plainly() {
        let text = Interfaces::of(b"hello", "plugin 'x'").unwrap_err().to_string();
        assert_eq!(text, "plugin 'x' is not a WebAssembly file");
        let core = Interfaces::of(b"\0asm\x01\0\0\0", "plugin 'x'").unwrap_err().to_string();
        assert!(core.contains("is a core WebAssembly module, not a component"), "{core}");
    }

    /// The adapter exports exactly the contract and imports only WASI.
    #[test]
    fn the_embedded_adapter_exports_leashed_net_over_wasi_alone() {
        let adapter = Interfaces::of(EMBEDDED_WASI_SOCKETS_ADAPTER, "the adapter").unwrap();
        assert_eq!(
            adapter.exports,
            vec![
                format!("leashed:net/tcp@{NET_VERSION}"),
                format!("leashed:net/reuse@{NET_VERSION}"),
                format!("leashed:net/sites@{NET_VERSION}")
            ]
        );
        assert!(adapter.imports.iter().all(|name| name.starts_with("wasi:")), "{:?}", adapter.imports);
        assert!(adapter.imports.iter().any(|name| name.starts_with("wasi:sockets/tcp@")), "{:?}", adapter.imports);
    }

    /// The MySQL guest itself becomes a stock leashed:mysql component.
    #[test]
    fn the_guest_composed_for_wasi_sockets_imports_only_wasi() {
        let stock = for_wasi_sockets(EMBEDDED_GUEST, "the guest").unwrap();
        let stock = Interfaces::of(&stock, "the stock guest").unwrap();
        assert!(stock.imports.iter().all(|name| name.starts_with("wasi:")), "{:?}", stock.imports);
        assert!(stock.exports.contains(&format!("leashed:mysql/connection@{MYSQL_VERSION}")), "{:?}", stock.exports);
        // What a component importing leashed:mysql also imports, for the error codes.
        assert!(stock.exports.contains(&NET_TCP.to_string()), "{:?}", stock.exports);
    }

    /// A component with nothing to adapt is refused.
    #[test]
    fn a_component_without_leashed_imports_has_nothing_to_adapt() {
        let error = for_wasi_sockets(EMBEDDED_WASI_SOCKETS_ADAPTER, "the adapter").unwrap_err().to_string();
        assert!(error.contains("imports neither leashed:mysql nor leashed:net"), "{error}");
    }

    /// The guest's exports are what plugins import.
    #[test]
    fn the_embedded_guest_exports_the_mysql_interfaces() {
        let guest = Interfaces::of(EMBEDDED_GUEST, "the guest").unwrap();
        assert!(guest.exports.contains(&format!("leashed:mysql/connection@{MYSQL_VERSION}")), "{:?}", guest.exports);
    }
}
