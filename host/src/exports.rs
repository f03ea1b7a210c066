//! The MySQL guest's exports (`leashed:mysql/connection`) as typed functions, typechecked once
//! per runtime instead of once per instance.
//!
//! wasmtime's bindgen (48) typechecks every export of a world each time it loads an instance.
//! For the 20 functions this host calls, whose results nest records and variants, that was about a
//! quarter of instantiating (`perf record` of `profile_loop URL instantiate`: 23 % of the samples
//! under `ClientIndices::load`, most of it `typecheck_record`, `typecheck_variant` and the
//! `memcmp` of their field names). Here each export is found once per component
//! ([`ExportIndices::new`]), typechecked on the first instance only, and every later instance
//! takes its functions as they are: all of them come from the same `InstancePre`, so their
//! types are the ones already checked. The types are bindgen's; only the loading is ours.

use crate::bindings::{Column, ConnectOptions, MysqlError, QueryError, ResultSet, Value, Warning};
use crate::state::HostState;
use std::sync::atomic::{AtomicBool, Ordering};
use wasmtime::component::{Component, ComponentExportIndex, Func, Instance, ResourceAny, TypedFunc};
use wasmtime::{AsContextMut, Result, format_err};

/// The exported interface every function below belongs to.
pub(crate) const INTERFACE: &str = "leashed:mysql/connection@0.2.0";

/// Declares the exports: for each, its name in the interface, its parameters and its result.
/// Generates where to find them (`ExportIndices`), an instance's functions (`GuestExports`) and
/// one method per function that calls it.
macro_rules! guest_exports {
    ($( $field:ident = $name:literal ( $($param:ty),* ) -> $result:ty; )*) => {
        /// Where each export sits in one component, found once; and whether their types have
        /// been checked against the ones below. Crate-private, as is [`GuestExports`]: only
        /// [`crate::runtime::Runtime`] makes them, from its one `InstancePre`, which is what
        /// makes skipping the check sound.
        pub(crate) struct ExportIndices {
            $( $field: ComponentExportIndex, )*
            checked: AtomicBool,
        }

        /// One instance's exported functions.
        pub(crate) struct GuestExports {
            $( $field: Func, )*
        }

        impl ExportIndices {
            /// Finds every export, or names the first one the component lacks.
            pub fn new(component: &Component) -> Result<Self> {
                let interface = component
                    .get_export_index(None, INTERFACE)
                    .ok_or_else(|| format_err!("no exported instance named `{INTERFACE}`"))?;
                let find = |name: &str| {
                    component
                        .get_export_index(Some(&interface), name)
                        .ok_or_else(|| format_err!("`{INTERFACE}` does not export `{name}`"))
                };
                Ok(ExportIndices { $( $field: find($name)?, )* checked: AtomicBool::new(false) })
            }

            /// `instance`'s functions. The first instance's are typechecked; if one does not
            /// have the type this host calls it with, the error names it. `instance` must be an
            /// instance of the component these indices were found in: later ones are not
            /// checked again.
            pub fn load(&self, mut store: impl AsContextMut, instance: &Instance) -> Result<GuestExports> {
                let mut store = store.as_context_mut();
                if !self.checked.load(Ordering::Acquire) {
                    $(
                        instance
                            .get_typed_func::<( $($param,)* ), ($result,)>(&mut store, &self.$field)
                            .map_err(|e| format_err!("`{INTERFACE}`'s `{}` does not have the type leashed expects: {e}", $name))?;
                    )*
                    self.checked.store(true, Ordering::Release);
                }
                let func = |store: &mut wasmtime::StoreContextMut<'_, _>, index: &ComponentExportIndex, name: &str| {
                    instance.get_func(store, index).ok_or_else(|| format_err!("`{INTERFACE}`'s `{name}` is not a function"))
                };
                Ok(GuestExports { $( $field: func(&mut store, &self.$field, $name)?, )* })
            }
        }

        impl GuestExports {
            $(
                #[doc = concat!("Calls `", $name, "` and returns its result.")]
                pub async fn $field(
                    &self,
                    store: &mut wasmtime::Store<HostState>,
                    args: ( $($param,)* ),
                ) -> Result<$result> {
                    // SAFETY: `ExportIndices::load` typechecked this export with these very
                    // types on the first instance of the component; every `GuestExports` comes
                    // from an instance of that same component (one `InstancePre`).
                    let func = unsafe { TypedFunc::<( $($param,)* ), ($result,)>::new_unchecked(self.$field) };
                    Ok(func.call_async(store, args).await?.0)
                }
            )*
        }
    };
}

guest_exports! {
    open = "[static]connection.open" (&ConnectOptions) -> Result<ResourceAny, MysqlError>;
    query = "[method]connection.query" (ResourceAny, &str) -> Result<Vec<ResultSet>, QueryError>;
    query_stream = "[method]connection.query-stream" (ResourceAny, &str) -> Result<ResourceAny, MysqlError>;
    prepare = "[method]connection.prepare" (ResourceAny, &str) -> Result<ResourceAny, MysqlError>;
    ping = "[method]connection.ping" (ResourceAny) -> Result<(), MysqlError>;
    server_version = "[method]connection.server-version" (ResourceAny) -> String;
    connection_id = "[method]connection.connection-id" (ResourceAny) -> u32;
    uses_tls = "[method]connection.uses-tls" (ResourceAny) -> bool;
    select_db = "[method]connection.select-db" (ResourceAny, &str) -> Result<(), MysqlError>;
    reset = "[method]connection.reset" (ResourceAny) -> Result<(), MysqlError>;
    change_user = "[method]connection.change-user" (ResourceAny, &str, Option<&str>, Option<&str>) -> Result<(), MysqlError>;
    warnings = "[method]connection.warnings" (ResourceAny) -> Result<Vec<Warning>, MysqlError>;
    close = "[method]connection.close" (ResourceAny) -> Result<(), MysqlError>;
    stream_columns = "[method]row-stream.columns" (ResourceAny) -> Vec<Column>;
    next_batch = "[method]row-stream.next-batch" (ResourceAny, u32) -> Result<Vec<Vec<Value>>, MysqlError>;
    stream_outcome = "[method]row-stream.outcome" (ResourceAny) -> Option<ResultSet>;
    close_stream = "[method]row-stream.close" (ResourceAny) -> Result<(), MysqlError>;
    send_long_data = "[method]statement.send-long-data" (ResourceAny, u16, &[u8]) -> Result<(), MysqlError>;
    execute = "[method]statement.execute" (ResourceAny, &[Value]) -> Result<Vec<ResultSet>, QueryError>;
    close_statement = "[method]statement.close" (ResourceAny) -> Result<(), MysqlError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indices_of(wat: &str) -> Result<ExportIndices> {
        let component = Component::new(&wasmtime::Engine::default(), wat).expect("valid WAT");
        ExportIndices::new(&component)
    }

    /// A component that exports no client, or a client without one of the functions the host
    /// calls, is refused before any instance is made, with the missing name.
    #[test]
    fn a_missing_export_is_named() {
        let none = indices_of("(component)").err().expect("no interface");
        assert_eq!(none.to_string(), "no exported instance named `leashed:mysql/connection@0.2.0`");

        let partial = indices_of(
            r#"(component
                 (core module $m (func (export "f")))
                 (core instance $i (instantiate $m))
                 (func $f (canon lift (core func $i "f")))
                 (instance $client (export "hello" (func $f)))
                 (export "leashed:mysql/connection@0.2.0" (instance $client)))"#,
        )
        .err()
        .expect("no functions");
        assert_eq!(partial.to_string(), "`leashed:mysql/connection@0.2.0` does not export `[static]connection.open`");
    }
}
