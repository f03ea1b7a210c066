//! Wiring: the engine, the linker (WASI p2 plus leashed:net), and instantiating a guest in a
//! fresh store under a policy. Behaviour lives elsewhere: the imports in `net/`, the calls into
//! the guest in [`crate::instance`].

use crate::bindings::{Client, ClientPre};
use crate::component::ComponentSource;
use crate::instance::GuestInstance;
use crate::policy::Policy;
use crate::state::HostState;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::error::Context;
use wasmtime::{Config, Engine, Store};

/// A compiled guest, ready to be instantiated any number of times (each in its own store).
pub struct Runtime {
    engine: Engine,
    pre: ClientPre<HostState>,
}

impl Runtime {
    /// Compiles the component and checks that it fits the `leashed:mysql/client` world: it may
    /// import only WASI p2 and leashed:net, and must export the client.
    pub fn new(source: &ComponentSource) -> wasmtime::Result<Self> {
        let mut config = Config::new();
        config.wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Enable);
        // Compiling the guest takes about a second; wasmtime's on-disk cache (keyed by the
        // component's bytes and the engine's settings) makes later runs start at once. Without a
        // usable cache directory we simply compile every time.
        if let Ok(cache) = wasmtime::Cache::from_file(None) {
            config.cache(Some(cache));
        }
        let engine = Engine::new(&config)?;
        let component = source.compile(&engine)?;

        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        Client::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .with_context(|| format!("{} needs imports leashed cannot provide", source.describe()))?;
        let pre = ClientPre::new(instance_pre).with_context(|| {
            format!("{} does not export the leashed:mysql client (leashed:mysql/connection@0.1.0)", source.describe())
        })?;
        Ok(Runtime { engine, pre })
    }

    /// A fresh instance in its own store, under `policy`.
    pub async fn instantiate(&self, policy: Policy) -> wasmtime::Result<GuestInstance> {
        let mut store = Store::new(&self.engine, HostState::new(policy));
        let client = self.pre.instantiate_async(&mut store).await.context("instantiating the guest")?;
        Ok(GuestInstance::new(store, client))
    }
}
