//! The per-store state every host import works on: the resource table, the WASI context (and
//! wasi:http's, for `leashed serve`), the policy, the audit registry, and the watch on the guest's
//! memory.

use crate::audit::Audit;
use crate::memory::MemoryWatch;
use crate::policy::Policy;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// What one guest instance's store holds.
pub struct HostState {
    pub table: ResourceTable,
    pub wasi: WasiCtx,
    pub policy: Policy,
    pub audit: Audit,
    pub memory: MemoryWatch,
    pub http: WasiHttpCtx,
    /// What the guest's outgoing wasi:http requests may do (served plugins only).
    pub outbound_http: crate::outbound_http::OutboundHttp,
    /// The guest's stderr, when the policy captures it.
    pub captured_stderr: Option<crate::guest_stderr::StderrTail>,
}

impl HostState {
    /// A fresh state. The guest's WASI gets stderr (for its panics) and no network of its own:
    /// wasi:sockets is switched off, so leashed:net is the only way out.
    pub fn new(policy: Policy) -> Self {
        HostState::with_wasi(policy, WasiCtx::builder())
    }

    /// A fresh state whose WASI context starts from `wasi` (e.g. with environment variables).
    /// Whatever it says, wasi:sockets is switched off, and stderr is inherited, or captured if
    /// the policy says so.
    pub fn with_wasi(policy: Policy, mut wasi: WasiCtxBuilder) -> Self {
        let captured = policy.capture_guest_stderr.then(crate::guest_stderr::StderrTail::default);
        match &captured {
            Some(tail) => wasi.stderr(tail.clone()),
            None => wasi.inherit_stderr(),
        };
        let wasi = wasi.allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false).build();
        HostState {
            table: ResourceTable::new(),
            wasi,
            policy,
            audit: Audit::default(),
            memory: MemoryWatch::default(),
            http: WasiHttpCtx::new(),
            outbound_http: crate::outbound_http::OutboundHttp::Denied,
            captured_stderr: captured,
        }
    }
}

/// A store for a guest, with its memory watched (and capped, if the policy says so), and its
/// stderr captured if the policy says so.
pub fn new_store(engine: &wasmtime::Engine, policy: Policy) -> wasmtime::Store<HostState> {
    let limit = policy.memory_limit;
    let mut state = HostState::new(policy);
    state.memory = limit.map(MemoryWatch::capped).unwrap_or_default();
    let mut store = wasmtime::Store::new(engine, state);
    store.limiter(|state| &mut state.memory);
    store
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.outbound_http }
    }
}
