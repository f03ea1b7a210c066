//! Wiring: the engine, the linker (WASI p2 plus leashed:net), and instantiating a guest in a
//! fresh store under a policy. Behaviour lives elsewhere: the imports in `net/`, the calls into
//! the guest in [`crate::instance`] (the leashed MySQL guest) and [`crate::invoke`] (any
//! component that imports leashed:net).

use crate::component::ComponentSource;
use crate::exports::{ExportIndices, INTERFACE};
use crate::instance::GuestInstance;
use crate::policy::Policy;
use crate::state::HostState;
use wasmtime::component::{Component, HasSelf, InstancePre, Linker};
use wasmtime::error::Context;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// The engine every leashed store runs on, with the pooling allocator: an instance takes its
/// memories, tables and fiber stack from slots reserved once, instead of mapping fresh ones
/// (and unmapping them when it is dropped), which was a sixth of a fresh instance's cost. Where
/// the pool cannot be reserved (a tight `ulimit -v`), instances are allocated on demand.
pub fn engine() -> wasmtime::Result<Engine> {
    let mut pooled = base_config();
    pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pool()));
    Engine::new(&pooled).or_else(|_| Engine::new(&base_config()))
}

/// Instances alive at once in one engine, at most (each component instance may hold several
/// core instances: the guest, its WASI adapter, a plugin's interpreter).
pub const POOLED_INSTANCES: u32 = 256;

/// The pool: room for [`POOLED_INSTANCES`] component instances. A slot's memory is reserved,
/// not committed; a composed Python component needs the large tables.
fn pool() -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(POOLED_INSTANCES)
        .total_core_instances(POOLED_INSTANCES * 4)
        .total_memories(POOLED_INSTANCES * 2)
        .total_tables(POOLED_INSTANCES * 4)
        .total_stacks(POOLED_INSTANCES)
        .table_elements(100_000)
        .max_component_instance_size(1 << 20)
        .max_core_instance_size(1 << 20)
        .table_keep_resident(1 << 16);
    // Where the kernel has PAGEMAP_SCAN (Linux 6.7+), a dropped instance's linear memory stays
    // mapped and only the pages it touched are set back, so the next instance takes no page
    // faults for them: a fresh instance's connect + SELECT 1 + close went from 559 to 501 us
    // (medians of 8 alternating pairs, `profile_loop URL fresh`, pinned), instantiating alone
    // did not move. Without it, wasmtime would zero all of the kept memory (instantiate 45 us
    // against 21 us), so linear memory is then not kept resident.
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.linear_memory_keep_resident(16 << 20).pagemap_scan(wasmtime::Enabled::Yes);
    }
    pool
}

/// What every leashed engine is configured with: wasm backtraces (for creation sites; function
/// names only, since file and line cost a walk of the address map on every capture; set
/// `WASMTIME_BACKTRACE_DETAILS=1` to get them in traps) and wasmtime's on-disk cache of
/// compiled code. `LEASHED_PERF_MAP=1` makes wasmtime write
/// `/tmp/perf-PID.map`, so `perf report` names the guest's functions.
pub fn base_config() -> Config {
    let mut config = Config::new();
    config.wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Environment);
    // A site keeps the innermost frames only (wasmtime reserves room for this many per capture).
    config.wasm_backtrace_max_frames(std::num::NonZeroUsize::new(crate::audit::site::MAX_SITE_FRAMES));
    // No component-model-async: leashed's guests and plugins are WASI 0.2 components, and
    // without the concurrent machinery every call and import is cheaper (a resumed request
    // 270 us instead of 345 us, pinned to one CPU, `profile_loop resume`).
    config.concurrency_support(false);
    if std::env::var_os("LEASHED_PERF_MAP").is_some_and(|v| v == "1") {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    // Compiling a component takes about a second; wasmtime's on-disk cache (keyed by the
    // component's bytes and the engine's settings) makes later runs start at once. Without a
    // usable cache directory we simply compile every time.
    if let Ok(cache) = wasmtime::Cache::from_file(None) {
        config.cache(Some(cache));
    }
    config
}

/// A linker with WASI p2 and leashed:net (`tcp`, `reuse` and `sites`), and nothing else. Whether a
/// component may import `reuse` is decided before it gets here (`compose::check_plugin` for
/// served plugins); a store whose policy has no parking lot refuses every `park`.
pub fn net_linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::<HostState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    crate::bindings::leashed::net::tcp::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
    crate::bindings::leashed::net::reuse::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
    crate::bindings::sites::leashed::net::sites::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
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
    pre: InstancePre<HostState>,
    exports: ExportIndices,
}

impl Runtime {
    /// Compiles the component and checks that it fits the `leashed:mysql/client` world: it may
    /// import only WASI p2 and leashed:net, and must export the client.
    pub fn new(source: &ComponentSource) -> wasmtime::Result<Self> {
        let engine = engine()?;
        let (_, instance_pre) = prepare(&engine, source)?;
        let exports = ExportIndices::new(instance_pre.component())
            .with_context(|| format!("{} does not export the leashed:mysql client ({INTERFACE})", source.describe()))?;
        Ok(Runtime { engine, pre: instance_pre, exports })
    }

    /// A fresh instance in its own store, under `policy`.
    pub async fn instantiate(&self, policy: Policy) -> wasmtime::Result<GuestInstance> {
        let mut store = crate::state::new_store(&self.engine, policy);
        let instance = self.pre.instantiate_async(&mut store).await.context("instantiating the guest")?;
        let exports = self.exports.load(&mut store, &instance).context("instantiating the guest")?;
        Ok(GuestInstance::new(store, exports))
    }
}
