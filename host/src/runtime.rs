//! Wiring: the engine, the linker (WASI p2 plus leashed:net), and instantiating a guest in a
//! fresh store under a policy. Behaviour lives elsewhere: the imports in `net/`, the calls into
//! the guest in [`crate::instance`] (the leashed MySQL guest) and [`crate::invoke`] (any
//! component that imports leashed:net).

use crate::bindings::{Client, ClientPre};
use crate::component::ComponentSource;
use crate::instance::GuestInstance;
use crate::policy::Policy;
use crate::state::HostState;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::error::Context;
use wasmtime::{Config, Engine};

/// The engine every leashed store runs on.
pub fn engine() -> wasmtime::Result<Engine> {
    Engine::new(&base_config())
}

/// What every leashed engine is configured with: detailed wasm backtraces (for creation sites)
/// and wasmtime's on-disk cache of compiled code.
pub fn base_config() -> Config {
    let mut config = Config::new();
    config.wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Enable);
    // Compiling a component takes about a second; wasmtime's on-disk cache (keyed by the
    // component's bytes and the engine's settings) makes later runs start at once. Without a
    // usable cache directory we simply compile every time.
    if let Ok(cache) = wasmtime::Cache::from_file(None) {
        config.cache(Some(cache));
    }
    config
}

/// A linker with WASI p2 and leashed:net, and nothing else.
pub fn net_linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::<HostState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    crate::bindings::leashed::net::tcp::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
    Ok(linker)
}

/// Compiles `source` and checks it needs nothing but WASI p2 and leashed:net.
pub fn prepare(
    engine: &Engine,
    source: &ComponentSource,
) -> wasmtime::Result<(Component, wasmtime::component::InstancePre<HostState>)> {
    let component = source.compile(engine)?;
    let instance_pre = net_linker(engine)?
        .instantiate_pre(&component)
        .with_context(|| format!("{} needs imports leashed cannot provide", source.describe()))?;
    Ok((component, instance_pre))
}

/// The leashed MySQL guest (or another component exporting its client), compiled and ready to
/// be instantiated any number of times, each in its own store.
pub struct Runtime {
    engine: Engine,
    pre: ClientPre<HostState>,
}

impl Runtime {
    /// Compiles the component and checks that it fits the `leashed:mysql/client` world: it may
    /// import only WASI p2 and leashed:net, and must export the client.
    pub fn new(source: &ComponentSource) -> wasmtime::Result<Self> {
        let engine = engine()?;
        let (_, instance_pre) = prepare(&engine, source)?;
        let pre = ClientPre::new(instance_pre).with_context(|| {
            format!("{} does not export the leashed:mysql client (leashed:mysql/connection@0.1.0)", source.describe())
        })?;
        Ok(Runtime { engine, pre })
    }

    /// A fresh instance in its own store, under `policy`.
    pub async fn instantiate(&self, policy: Policy) -> wasmtime::Result<GuestInstance> {
        let mut store = crate::state::new_store(&self.engine, policy);
        let client: Client = self.pre.instantiate_async(&mut store).await.context("instantiating the guest")?;
        Ok(GuestInstance::new(store, client))
    }
}
