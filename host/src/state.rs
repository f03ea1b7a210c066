//! The per-store state every host import works on: the resource table, the WASI context, the
//! policy, the audit registry, and the watch on the guest's memory.

use crate::audit::Audit;
use crate::memory::MemoryWatch;
use crate::policy::Policy;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// What one guest instance's store holds.
pub struct HostState {
    pub table: ResourceTable,
    pub wasi: WasiCtx,
    pub policy: Policy,
    pub audit: Audit,
    pub memory: MemoryWatch,
}

impl HostState {
    /// A fresh state. The guest's WASI gets stderr (for its panics) and no network of its own:
    /// wasi:sockets is switched off, so leashed:net is the only way out.
    pub fn new(policy: Policy) -> Self {
        let wasi =
            WasiCtx::builder().inherit_stderr().allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false).build();
        HostState { table: ResourceTable::new(), wasi, policy, audit: Audit::default(), memory: MemoryWatch::default() }
    }
}

/// A store for a guest, with its memory watched.
pub fn new_store(engine: &wasmtime::Engine, policy: Policy) -> wasmtime::Store<HostState> {
    let mut store = wasmtime::Store::new(engine, HostState::new(policy));
    store.limiter(|state| &mut state.memory);
    store
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}
