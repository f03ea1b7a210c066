//! `leashed serve`: wasi:http plugins served over HTTP/1.1, one fresh instance (and store) per
//! request, sockets lent under the allowlist, limits and a leak audit per request.
//!
//! - this file: loading the plugin (composing it with the MySQL guest when it imports
//!   leashed:mysql), the engine (pooling allocator, epoch ticks), the accept loop and shutdown;
//! - [`config`]: what the operator chose; [`request`]: one request, top to bottom;
//! - [`held`]: holding a response back until its audit is known (`--deny-leaks`);
//! - [`totals`]: the run's counters and its final `audit:` line.
//!
//! Nothing here outlives the server: the epoch ticker stops with the engine, and at shutdown
//! every request still running is cancelled and its store reclaimed.

pub mod config;
mod held;
mod request;
pub mod totals;

pub use config::ServeConfig;
pub use totals::Totals;

use crate::compose::{Interfaces, ServablePlugin, servable_plugin};
use crate::net::parking::{ParkingLot, SessionReuse};
use crate::runtime::{base_config, net_linker};
use crate::state::HostState;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use wasmtime::component::Component;
use wasmtime::error::Context;
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// How often the engine's epoch advances: a guest running without a host call yields to the
/// runtime at least this often, so deadlines and shutdown can stop it.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How long connections get to send the 503 of a request cancelled at shutdown.
const CANCELLED_ANSWER_GRACE: Duration = Duration::from_secs(2);

/// A plugin compiled and pre-instantiated, ready to serve.
pub struct Server {
    pre: ProxyPre<HostState>,
    config: ServeConfig,
    /// One permit per request allowed to run at once.
    slots: Arc<Semaphore>,
    /// Turns true when running requests must stop (shutdown past its deadline).
    cancel: watch::Sender<bool>,
    totals: Totals,
    /// Whether the plugin was composed with the MySQL guest.
    pub composed: bool,
    /// Sessions parked for reuse (`None` when reuse is off).
    pub parking: Option<Arc<ParkingLot>>,
}

impl Server {
    /// Checks and compiles `plugin` (the bytes of a component; `what` names it in errors).
    /// A plugin that imports leashed:mysql gets the embedded MySQL guest plugged in first.
    pub fn new(plugin: &[u8], what: &str, mut config: ServeConfig) -> wasmtime::Result<Self> {
        let ServablePlugin { bytes, composed } = servable_plugin(plugin, what)?;
        // Parked sessions are scoped by the plugin's digest: another plugin never gets them.
        let parking = config.session_reuse.map(|limits| Arc::new(ParkingLot::new(limits)));
        config.policy.reuse = parking.clone().map(|lot| SessionReuse { lot, scope: digest_hex(&bytes) });
        // A component composed for stock runtimes carries its own sockets and no leashed import
        // (a Python plugin imports wasi:sockets too, for CPython's socket module, but also
        // leashed:net through the MySQL guest).
        let imports = Interfaces::of(&bytes, what)?.imports;
        let own_sockets = imports.iter().any(|name| name.starts_with("wasi:sockets/tcp@"));
        if own_sockets && !imports.iter().any(|name| name.starts_with("leashed:")) {
            tracing::warn!(
                "{what} opens its own sockets with wasi:sockets (was it composed --for wasi-sockets?); leashed \
                 serve lends sockets only through leashed:net, so its connects are denied and nothing is audited: \
                 serve the plugin as built, and leashed plugs in the MySQL client itself"
            );
        }

        let engine = serve_engine(&config)?;
        let component = Component::new(&engine, &bytes).with_context(|| format!("compiling {what}"))?;
        let mut linker = net_linker(&engine)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .with_context(|| format!("{what} needs imports leashed cannot provide"))?;
        let pre = ProxyPre::new(instance_pre)
            .with_context(|| format!("{what} does not export wasi:http/incoming-handler@0.2"))?;
        start_epoch_ticker(&engine);
        let slots = Arc::new(Semaphore::new(config.max_concurrent));
        if let Some(lot) = &parking {
            start_parking_sweeper(lot);
        }
        Ok(Server { pre, config, slots, cancel: watch::channel(false).0, totals: Totals::default(), composed, parking })
    }

    /// The run's counters so far.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// Accepts connections on `listener` until `shutdown` resolves; then stops accepting, lets
    /// requests in flight finish within the shutdown timeout, cancels and reclaims the rest.
    pub async fn run(self: Arc<Self>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => self.clone().serve_connection(stream, peer, &graceful),
                    Err(e) => {
                        tracing::warn!("accepting a connection failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        let in_flight = self.in_flight();
        tracing::info!(in_flight, "shutting down: no new connections; waiting for requests in flight");
        let connections_done = graceful.shutdown();
        tokio::pin!(connections_done);
        let finished = tokio::time::timeout(self.config.shutdown_timeout, &mut connections_done).await.is_ok();
        if !finished || self.in_flight() > 0 {
            tracing::warn!(
                in_flight = self.in_flight(),
                "requests still running after the shutdown timeout of {:?}: cancelling them and reclaiming what they hold",
                self.config.shutdown_timeout
            );
            self.cancel.send_replace(true);
            // Cancelled requests answer 503; give their connections a moment to send it.
            let _ = tokio::time::timeout(CANCELLED_ANSWER_GRACE, &mut connections_done).await;
        }
        // Every request holds a slot until its store is dropped and checked against the OS.
        let all = u32::try_from(self.config.max_concurrent).unwrap_or(u32::MAX);
        let _ = self.slots.acquire_many(all).await;
        if let Some(lot) = &self.parking {
            lot.clear();
        }
    }

    fn serve_connection(
        self: Arc<Self>,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        graceful: &hyper_util::server::graceful::GracefulShutdown,
    ) {
        let service = hyper::service::service_fn(move |req| {
            let server = self.clone();
            async move { Ok::<_, std::convert::Infallible>(server.handle(req).await) }
        });
        let connection = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, "HTTP connection ended with an error: {e}");
            }
        });
    }

    /// Requests holding a slot now.
    fn in_flight(&self) -> usize {
        self.config.max_concurrent - self.slots.available_permits()
    }
}

/// An engine for serving: the pooling allocator (instances are made and dropped per request)
/// and epoch interruption (for deadlines).
fn serve_engine(config: &ServeConfig) -> wasmtime::Result<Engine> {
    let mut wasm = base_config();
    wasm.epoch_interruption(true);
    let mut pool = PoolingAllocationConfig::default();
    // A composed plugin holds several components (the plugin, the MySQL guest, the WASI
    // adapters); an interpreter-based one (componentize-py) holds dozens of core instances.
    let slots = u32::try_from(config.max_concurrent).unwrap_or(u32::MAX).saturating_mul(2).max(16);
    pool.total_component_instances(slots)
        .total_core_instances(slots.saturating_mul(64).min(10_000))
        .total_memories(slots.saturating_mul(8).min(4_000))
        .total_tables(slots.saturating_mul(16).min(10_000))
        .max_core_instances_per_component(200)
        .max_memories_per_component(16)
        .max_tables_per_component(64)
        .max_memory_size(config.memory_limit)
        .table_elements(100_000)
        .max_component_instance_size(1 << 20)
        .max_core_instance_size(1 << 20);
    wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&wasm).context("setting up the wasmtime engine")
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is dropped.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("leashed-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch thread");
}

/// Closes parked sessions once they are idle or old, even when no request comes to find them.
/// The task ends with the lot.
fn start_parking_sweeper(lot: &Arc<ParkingLot>) {
    let lot = Arc::downgrade(lot);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(1));
        loop {
            ticks.tick().await;
            match lot.upgrade() {
                Some(lot) => lot.sweep(),
                None => return,
            }
        }
    });
}

/// The SHA-256 of `bytes`, as hex: a plugin's identity for session reuse.
fn digest_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
