//! The per-store state every host import works on: the resource table, the WASI context (and
//! wasi:http's, for `leashed serve`), the policy, the audit registry, and the watch on the guest's
//! memory.

use crate::audit::Audit;
use crate::memory::MemoryWatch;
use crate::policy::Policy;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The most entries a store's resource table holds at once (wasmtime's default is a million):
/// every handle the guest holds, leashed's and WASI's, takes one, so this bounds the host
/// memory a guest can pin outside its linear memory by opening handles.
pub const MAX_TABLE_ENTRIES: usize = 2048;

/// The most bytes (wasmtime's in-memory measure) one wasi:http `fields` resource the guest
/// builds may hold; with [`MAX_TABLE_ENTRIES`] it bounds what headers can take.
pub const MAX_HTTP_FIELDS_BYTES: usize = 16 * 1024;

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
    /// Connection entries in the table: the ones the guest holds, and the ones it dropped that
    /// stay as the parent of a live stream (the deferred and reclaim policies). Each may hold a
    /// socket, so this, not the audit's count of undropped connections, is what
    /// `Policy::max_connections` bounds.
    pub held_connections: usize,
    /// Frames the guest attached for its next lend or drop (leashed:net/sites).
    pub own_frames: Option<Vec<String>>,
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
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_TABLE_ENTRIES);
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(MAX_HTTP_FIELDS_BYTES);
        HostState {
            table,
            wasi,
            policy,
            audit: Audit::default(),
            memory: MemoryWatch::default(),
            http,
            outbound_http: crate::outbound_http::OutboundHttp::Denied,
            captured_stderr: captured,
            held_connections: 0,
            own_frames: None,
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
