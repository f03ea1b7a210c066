//! `leashed serve`: wasi:http plugins served over HTTP/1.1, one fresh instance (and store) per
//! request, sockets lent under the allowlist, limits and a leak audit per request.
//!
//! - this file: loading the plugin (composing it with the MySQL guest when it imports
//!   leashed:mysql), the engine (pooling allocator, epoch ticks), the accept loop (under
//!   `--max-client-connections`) and shutdown;
//! - [`config`]: what the operator chose; `request`: one request, top to bottom;
//! - [`limits`]: the limits on clients and their clocks; `front`: a client connection under
//!   them; `body`: a request body, read ahead of the request's slot;
//! - `held`: holding a response back until its audit is known (`--deny-leaks`);
//! - [`totals`]: the run's counters and its final `audit:` line.
//!
//! Nothing here outlives the server: the epoch ticker stops with the engine, and at shutdown
//! every request still running is cancelled and its store reclaimed.

mod body;
pub mod config;
mod front;
mod held;
pub mod limits;
mod request;
pub mod totals;

pub use config::ServeConfig;
pub use front::listen;
pub use limits::ClientLimits;
pub use totals::Totals;

use crate::compose::{Interfaces, ServablePlugin, servable_plugin};
use crate::net::parking::{ParkingLot, SessionReuse};
use crate::runtime::{base_config, net_linker};
use crate::state::HostState;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use wasmtime::component::Component;
use wasmtime::error::Context;
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// How often the engine's epoch advances: a guest running without a host call yields to the
/// runtime at least this often, so deadlines and shutdown can stop it.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How long connections get to send the 503 of a request cancelled at shutdown.
const CANCELLED_ANSWER_GRACE: Duration = Duration::from_secs(2);

/// The least time between two log lines saying that `--max-client-connections` was reached.
const AT_CAP_LOG_EVERY: Duration = Duration::from_secs(10);

/// A plugin compiled and pre-instantiated, ready to serve.
pub struct Server {
    pre: ProxyPre<HostState>,
    config: ServeConfig,
    /// One permit per request allowed to run at once.
    slots: Arc<Semaphore>,
    /// One permit per client connection allowed to be open at once.
    places: Arc<Semaphore>,
    /// Turns true when running requests must stop (shutdown past its deadline).
    cancel: watch::Sender<bool>,
    /// Turns true when the server stops accepting: connections waiting for a request head close.
    stopping: watch::Sender<bool>,
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
        // Every request runs on a connection: fewer connections than slots would idle slots.
        config.client.max_connections = config.client.max_connections.max(config.max_concurrent);
        let places = Arc::new(Semaphore::new(config.client.max_connections));
        if let Some(lot) = &parking {
            start_parking_sweeper(lot);
        }
        let (cancel, stopping) = (watch::channel(false).0, watch::channel(false).0);
        Ok(Server { pre, config, slots, places, cancel, stopping, totals: Totals::default(), composed, parking })
    }

    /// The run's counters so far.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// Accepts connections on `listener` until `shutdown` resolves; then stops accepting, lets
    /// requests in flight finish within the shutdown timeout, cancels and reclaims the rest.
    /// At `--max-client-connections` it accepts nothing until a connection closes: new ones
    /// wait in the listen backlog.
    pub async fn run(self: Arc<Self>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        tokio::pin!(shutdown);
        let mut at_cap_logged: Option<Instant> = None;
        loop {
            let place = match self.places.clone().try_acquire_owned() {
                Ok(place) => place,
                Err(_) => {
                    if at_cap_logged.is_none_or(|at| at.elapsed() >= AT_CAP_LOG_EVERY) {
                        at_cap_logged = Some(Instant::now());
                        tracing::warn!(target: "leashed::client", "{} client connections are open (--max-client-connections): new ones wait in the listen backlog until one closes", self.config.client.max_connections);
                    }
                    tokio::select! {
                        place = self.places.clone().acquire_owned() => place.expect("the semaphore is never closed"),
                        () = &mut shutdown => break,
                    }
                }
            };
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => self.clone().serve_connection(stream, peer, place, &graceful),
                    Err(e) => {
                        tracing::warn!("accepting a connection failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        // hyper closes idle connections itself, but waits for one still sending a request head.
        self.stopping.send_replace(true);
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
            Totals::add(&self.totals.parked_at_exit, lot.len() as u64);
            lot.clear();
        }
        if let Some(clients) = self.totals.snapshot().clients() {
            tracing::info!(target: "leashed::client", "{clients}");
        }
    }

    /// Serves one client connection on a task of its own, which holds `place` (under
    /// `--max-client-connections`) and closes the connection when a client timeout runs out.
    fn serve_connection(
        self: Arc<Self>,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        place: OwnedSemaphorePermit,
        graceful: &hyper_util::server::graceful::GracefulShutdown,
    ) {
        let clock = limits::ConnectionClock::new(&self.config.client, Instant::now());
        let server = self.clone();
        let requests = clock.clone();
        let service = hyper::service::service_fn(move |req| {
            let server = server.clone();
            // Busy from a complete head until hyper has written the response's body out.
            let in_flight = requests.request_started();
            async move {
                // A task of its own: a client that hangs up mid-request makes hyper drop this
                // future, but the request still runs to its end and is logged and counted.
                let response = match tokio::spawn(server.handle(req)).await {
                    Ok(response) => response,
                    Err(e) => {
                        tracing::error!(target: "leashed::access", "HOST BUG: the task serving a request failed: {e}");
                        request::text(hyper::StatusCode::INTERNAL_SERVER_ERROR, "leashed: internal error\n")
                    }
                };
                Ok::<_, std::convert::Infallible>(response.map(|body| front::Tracked::new(body, in_flight)))
            }
        });
        // hyper's own header timer is off: it starts when the connection goes idle, so it would
        // also cut keep-alive idle time to the header timeout. limits.rs times both apart.
        let connection = http1::Builder::new()
            .keep_alive(true)
            .header_read_timeout(None)
            .serve_connection(TokioIo::new(front::Watched::new(stream, clock.clone())), service);
        let connection = graceful.watch(connection);
        let stopping = self.stopping.subscribe();
        tokio::spawn(
            async move { front::run_connection(connection, clock, stopping, peer, &self.totals, place).await },
        );
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
    // No wasm offsets in backtraces: serve logs a trap's kind and a leak's function names,
    // never an offset, and finding each frame's offset in the address map was most of the cost
    // of the backtrace captured at every lend (`leashed query` and `audit` keep the map).
    wasm.generate_address_map(false);
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
    // Where the kernel has PAGEMAP_SCAN (Linux 6.7+), a dropped instance's memories and
    // tables are reset in place: only the pages it touched are set back, with no madvise. An
    // madvise in a multi-threaded server shoots down the other cores' TLBs: that was a sixth of
    // the CPU under `ab -c 32`, and resetting in place took throughput from 2,000 to 3,300
    // requests/s (see the README's "Speed"). Without it, wasmtime would memset everything up to
    // these sizes, so the pool keeps its madvise.
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.linear_memory_keep_resident(16 << 20).table_keep_resident(1 << 20).pagemap_scan(wasmtime::Enabled::Yes);
    }
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
