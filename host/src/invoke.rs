//! Any component that imports leashed:net, run under audit: instantiate it under a policy, call
//! its exports by name with WAVE-encoded arguments (as `wasmtime run --invoke` does), and report
//! per call what it lent and did not give back. Tearing down verifies with the OS that every
//! socket is closed.

use crate::audit::report::{LeakReport, OsMismatch};
use crate::audit::{Audit, CallId};
use crate::component::ComponentSource;
use crate::policy::Policy;
use crate::runtime::{engine, prepare};
use crate::state::HostState;
use wasm_wave::untyped::UntypedFuncCall;
use wasm_wave::wasm::WasmFunc;
use wasmtime::component::{Component, Func, Instance, InstancePre, Val};
use wasmtime::error::Context;
use wasmtime::{Engine, Store, bail};

/// A compiled component, ready to be instantiated under audit.
pub struct AuditedComponent {
    engine: Engine,
    component: Component,
    pre: InstancePre<HostState>,
}

/// One audited call and what came of it.
pub struct CallOutcome {
    pub call: CallId,
    /// The call as given, e.g. `run("127.0.0.1", 3306)`.
    pub invocation: String,
    /// The results, WAVE-encoded; or the trap.
    pub result: Result<Vec<String>, wasmtime::Error>,
    /// What the call lent and had not given back when it returned.
    pub report: LeakReport,
    /// What the guest wrote to stderr during the call, when the policy captures it.
    pub guest_stderr: String,
    /// What kind of trap it was, if it trapped.
    pub trap_kind: Option<crate::trap_text::TrapKind>,
}

/// What tearing the store down found.
pub struct Teardown {
    /// The store-wide report, made just before teardown.
    pub report: LeakReport,
    /// Sockets still open after the store was dropped (a host bug if not empty).
    pub still_open: Vec<OsMismatch>,
    /// Why the OS could not be asked about them (then `still_open` is empty but proves
    /// nothing: a host problem, never "all closed").
    pub os_unreadable: Option<String>,
    pub audit: Audit,
}

impl AuditedComponent {
    /// Compiles `source`; it may import only WASI p2 and leashed:net.
    pub fn new(source: &ComponentSource) -> wasmtime::Result<Self> {
        let engine = engine()?;
        let (component, pre) = prepare(&engine, source)?;
        Ok(AuditedComponent { engine, component, pre })
    }

    /// A fresh instance in its own store, under `policy`.
    pub async fn instantiate(&self, policy: Policy) -> wasmtime::Result<AuditedInstance> {
        let mut store = crate::state::new_store(&self.engine, policy);
        let instance = self.pre.instantiate_async(&mut store).await.context("instantiating the component")?;
        Ok(AuditedInstance { store, instance, component: self.component.clone() })
    }
}

/// An instance whose every call is audited.
pub struct AuditedInstance {
    store: Store<HostState>,
    instance: Instance,
    component: Component,
}

impl AuditedInstance {
    /// Calls an export, e.g. `run("127.0.0.1", 3306)` or `my:pkg/iface#run("x")`.
    ///
    /// The outer error is for a call that cannot be made (unknown export, bad arguments); a trap
    /// inside the call is in [`CallOutcome::result`].
    pub async fn invoke(&mut self, invocation: &str) -> wasmtime::Result<CallOutcome> {
        let call = UntypedFuncCall::parse(invocation)
            .map_err(|e| wasmtime::format_err!("cannot parse `{invocation}` as a WAVE call: {e}"))?;
        let func = self.find_func(call.name())?;
        let ty = func.ty(&self.store);
        let param_types: Vec<_> = WasmFunc::params(&ty).collect();
        let params: Vec<Val> = call
            .to_wasm_params(&param_types)
            .map_err(|e| wasmtime::format_err!("bad arguments in `{invocation}`: {e}"))?;
        let mut results = vec![Val::Bool(false); WasmFunc::results(&ty).count()];

        let audit = self.store.data().audit.clone();
        let stderr = self.store.data().captured_stderr.clone();
        let mark = stderr.as_ref().map_or(0, |tail| tail.mark());
        let id = audit.begin_call(invocation.to_string());
        let called = func.call_async(&mut self.store, &params, &mut results).await;
        audit.end_call(id, called.is_err());
        let guest_stderr = stderr.map(|tail| tail.since(mark)).unwrap_or_default();
        let trap_kind = called
            .as_ref()
            .err()
            .map(|trap| crate::trap_text::classify(trap, self.store.data().memory.limit_hit, &guest_stderr));
        let result = called
            .map(|()| results.iter().map(|v| wasm_wave::to_string(v).unwrap_or_else(|e| format!("<{e}>"))).collect());
        let report = audit.call_report(id);
        Ok(CallOutcome { call: id, invocation: invocation.to_string(), result, report, guest_stderr, trap_kind })
    }

    fn find_func(&mut self, name: &str) -> wasmtime::Result<Func> {
        let index = match name.split_once('#') {
            Some((interface, func)) => {
                let (_, instance) = self
                    .component
                    .get_export(None, interface)
                    .with_context(|| format!("the component exports no interface `{interface}`"))?;
                self.component.get_export_index(Some(&instance), func)
            }
            None => self.component.get_export_index(None, name),
        };
        let Some(index) = index else { bail!("the component exports no function `{name}`") };
        match self.instance.get_func(&mut self.store, index) {
            Some(func) => Ok(func),
            None => bail!("`{name}` is not a function export"),
        }
    }

    /// This store's handle registry.
    pub fn audit(&self) -> &Audit {
        &self.store.data().audit
    }

    /// Reports on the whole store, drops it, and checks with the OS that every socket it held is
    /// closed.
    pub fn teardown(self) -> Teardown {
        let audit = self.store.data().audit.clone();
        let report = audit.store_report();
        drop(self.store);
        let (still_open, os_unreadable) = match audit.sockets_still_open() {
            Ok(open) => (open, None),
            Err(why) => (Vec::new(), Some(why)),
        };
        Teardown { report, still_open, os_unreadable, audit }
    }
}
