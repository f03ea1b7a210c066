//! One request, top to bottom: its body read ahead (up to `--body-buffer`, under the minimum
//! rate); wait for a slot; a fresh store under the policy and the limits; the plugin's handler
//! in a task of its own, under an audit scope and the deadline; the response (held back under
//! `--deny-leaks`); and, once the store is dropped and its sockets are checked with the OS, one
//! access-log line and the run's counters.

use super::Server;
use super::body::{self, Unread};
use super::held::{self, Held};
use super::totals::Totals;
use crate::audit::report::{LeakReport, OsMismatch};
use crate::audit::{Event, Summary};
use crate::memory::MemoryWatch;
use crate::state::HostState;
use bytes::Bytes;
use hyper::StatusCode;
use hyper::body::Incoming;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use wasmtime::Store;
use wasmtime::error::Context;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

type Response = hyper::Response<HyperOutgoingBody>;

/// How the plugin's handler ended.
#[derive(Debug)]
enum End {
    /// It returned.
    Returned,
    /// It trapped (a panic, the memory limit, a strict-policy violation, …).
    Trapped(String),
    /// It ran past the request's deadline and was stopped.
    TimedOut(Duration),
    /// The server shut down while it ran.
    Cancelled,
}

/// What a request's store left behind, known once it is dropped.
struct GuestRun {
    end: End,
    /// What the request lent and the plugin had not released when its handler ended.
    report: LeakReport,
    summary: Summary,
    /// Sockets the OS still held after the store was dropped (host bugs).
    still_open: Vec<OsMismatch>,
    /// Why the OS could not be asked about them (/proc/self/fd unreadable): a host problem,
    /// which `--deny-leaks` refuses like a leak, never "0 open".
    os_unreadable: Option<String>,
    /// What the plugin wrote to stderr (its last 64 KiB).
    stderr: String,
}

impl GuestRun {
    fn leaked(&self) -> usize {
        self.report.leaked_handles()
    }

    /// Whether the audit could not check the request's sockets with the OS.
    fn unverified(&self) -> bool {
        self.os_unreadable.is_some() || self.report.os_unreadable.is_some()
    }
}

impl Server {
    pub(super) async fn handle(self: Arc<Self>, request: hyper::Request<Incoming>) -> Response {
        let arrived = Instant::now();
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
        let label = request_label(request.method(), &path);
        // The body first, before a slot: a slow upload costs a buffer here, never an instance.
        let request = match body::read_ahead(request, &self.config.client, &label, arrived + self.config.deadline).await
        {
            Ok(request) => request,
            Err(unread) => return self.refuse_unread(&label, unread, arrived),
        };
        if request.body().streams_on() {
            Totals::add(&self.totals.bodies_streamed, 1);
        }
        let waiting = self.config.deadline.saturating_sub(arrived.elapsed());
        let Ok(Ok(permit)) = tokio::time::timeout(waiting, self.slots.clone().acquire_owned()).await else {
            tracing::warn!(target: "leashed::access", request = %label, status = 503, "no free slot within the deadline (--max-concurrent {})", self.config.max_concurrent);
            return text(StatusCode::SERVICE_UNAVAILABLE, "leashed: the server is busy; try again\n");
        };
        let deadline = self.config.deadline.saturating_sub(arrived.elapsed());

        let mut store = self.new_store();
        let (sender, receiver) = oneshot::channel();
        let handles = (|| -> wasmtime::Result<_> {
            let incoming = store.data_mut().http().new_incoming_request(Scheme::Http, request)?;
            let out = store.data_mut().http().new_response_outparam(sender)?;
            Ok((incoming, out))
        })();
        let (incoming, out) = match handles {
            Ok(handles) => handles,
            Err(e) => {
                tracing::warn!(target: "leashed::access", request = %label, status = 400, "cannot hand the request to the plugin: {e:#}");
                return text(StatusCode::BAD_REQUEST, "leashed: the request cannot be handed to the plugin\n");
            }
        };
        let guest = tokio::spawn(self.clone().run_guest(store, incoming, out, label.clone(), deadline, permit));

        match receiver.await {
            // The plugin set its response head.
            Ok(Ok(response)) if self.config.deny_leaks => match held::hold(response).await {
                Held::Complete(parts, body) => {
                    let run = joined(guest).await;
                    if run.leaked() > 0 || run.unverified() {
                        Totals::add(&self.totals.refused, 1);
                        self.finish(&label, StatusCode::INTERNAL_SERVER_ERROR, &run, arrived);
                        let why = if run.leaked() > 0 {
                            "the plugin leaked lent handles"
                        } else {
                            "the host could not check the request's sockets with the OS"
                        };
                        return text(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            &format!("leashed: {why}; its response was withheld (--deny-leaks)\n"),
                        );
                    }
                    self.finish(&label, parts.status, &run, arrived);
                    hyper::Response::from_parts(parts, held::full(body))
                }
                Held::Streaming(response) => {
                    self.finish_later(label, response.status(), guest, arrived, true, response)
                }
            },
            Ok(Ok(response)) => self.finish_later(label, response.status(), guest, arrived, false, response),
            // The plugin answered with a wasi:http error code instead of a response.
            Ok(Err(code)) => {
                let run = joined(guest).await;
                self.finish(&label, StatusCode::INTERNAL_SERVER_ERROR, &run, arrived);
                text(StatusCode::INTERNAL_SERVER_ERROR, &format!("leashed: the plugin failed the request: {code:?}\n"))
            }
            // The store (and with it the response outparam) is gone without a response.
            Err(_) => {
                let run = joined(guest).await;
                let (status, body) = match &run.end {
                    End::TimedOut(after) => (
                        StatusCode::GATEWAY_TIMEOUT,
                        format!("leashed: the plugin did not answer within {after:?}; it was stopped\n"),
                    ),
                    // What the trap says stays in the server's log; the client learns only that it trapped.
                    End::Trapped(_) => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "leashed: the plugin trapped (the server's log says why)\n".to_string(),
                    ),
                    End::Cancelled => {
                        (StatusCode::SERVICE_UNAVAILABLE, "leashed: the server is shutting down\n".to_string())
                    }
                    End::Returned => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "leashed: the plugin returned without setting a response\n".to_string(),
                    ),
                };
                self.finish(&label, status, &run, arrived);
                text(status, &body)
            }
        }
    }

    /// The answer to a request whose body did not come (before its slot): 408 when it came too
    /// slowly, 400 when the connection broke; either way the connection is closed after it.
    fn refuse_unread(&self, label: &str, unread: Unread, arrived: Instant) -> Response {
        let ms = format!("{:.1}", arrived.elapsed().as_secs_f64() * 1000.0);
        let (status, why) = match unread {
            Unread::TooSlow { received, min_rate } => (
                StatusCode::REQUEST_TIMEOUT,
                format!("the client sent its body below {min_rate} bytes/s (--body-min-rate; {received} bytes came)"),
            ),
            Unread::PastDeadline { received } => (
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the client's body did not come within the deadline of {:?} ({received} bytes came)",
                    self.config.deadline
                ),
            ),
            Unread::Broken(e) => (StatusCode::BAD_REQUEST, format!("the request's body could not be read: {e}")),
        };
        if status == StatusCode::REQUEST_TIMEOUT {
            Totals::add(&self.totals.bodies_too_slow, 1);
        }
        tracing::warn!(target: "leashed::access", request = %label, status = status.as_u16(), ms, "{why}; no slot was taken, and the connection is closed");
        let mut response = text(status, &format!("leashed: {why}\n"));
        response.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
        response
    }

    /// A store for one request: the policy, the plugin's environment, the memory cap, and an
    /// epoch deadline that makes a busy guest yield on every tick (so the deadline can stop it).
    fn new_store(&self) -> Store<HostState> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.envs(&self.config.env);
        // The plugin's stderr is kept per request: it tells a trap's kind, and is logged with
        // the request it belongs to instead of interleaving with others. Drop sites are recorded
        // only where the request's log can show them (`Policy::every_drop_site`).
        let policy =
            crate::policy::Policy { capture_guest_stderr: true, every_drop_site: false, ..self.config.policy.clone() };
        let mut state = HostState::with_wasi(policy, wasi);
        state.memory = MemoryWatch::capped(self.config.memory_limit);
        state.outbound_http = self.config.outbound_http;
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|state| &mut state.memory);
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        store
    }

    /// Runs the handler under the request's audit scope and deadline, then drops the store
    /// (reclaiming whatever the plugin left) and checks its sockets with the OS. The slot is
    /// given back only after that.
    async fn run_guest(
        self: Arc<Self>,
        mut store: Store<HostState>,
        incoming: wasmtime::component::Resource<wasmtime_wasi_http::p2::types::HostIncomingRequest>,
        out: wasmtime::component::Resource<wasmtime_wasi_http::p2::types::HostResponseOutparam>,
        label: String,
        deadline: Duration,
        permit: OwnedSemaphorePermit,
    ) -> GuestRun {
        let audit = store.data().audit.clone();
        let call = audit.begin_call(label);
        let mut cancel = self.cancel.subscribe();
        let handler = async {
            let proxy = self.pre.instantiate_async(&mut store).await.context("instantiating the plugin")?;
            proxy.wasi_http_incoming_handler().call_handle(&mut store, incoming, out).await
        };
        let end = tokio::select! {
            handled = tokio::time::timeout(deadline, handler) => match handled {
                Ok(Ok(())) => End::Returned,
                Ok(Err(trap)) => End::Trapped(self.trap_kind(&store, &trap)),
                Err(_) => End::TimedOut(self.config.deadline),
            },
            _ = cancel.wait_for(|cancelled| *cancelled) => End::Cancelled,
        };
        let stderr = store.data().captured_stderr.as_ref().map(|tail| tail.contents()).unwrap_or_default();
        audit.end_call(call, !matches!(end, End::Returned));
        let mut report = audit.call_report(call);
        report.suppress(&self.config.suppressions);
        drop(store);
        let (still_open, os_unreadable) = match audit.sockets_still_open() {
            Ok(open) => (open, None),
            Err(why) => (Vec::new(), Some(why)),
        };
        let summary = audit.summary();
        drop(permit);
        GuestRun { end, report, summary, still_open, os_unreadable, stderr }
    }

    /// What kind of trap stopped the plugin, in words for the log.
    fn trap_kind(&self, store: &Store<HostState>, trap: &wasmtime::Error) -> String {
        let stderr = store.data().captured_stderr.as_ref().map(|tail| tail.contents()).unwrap_or_default();
        match crate::trap_text::classify(trap, store.data().memory.limit_hit, &stderr) {
            crate::trap_text::TrapKind::MemoryLimit => {
                format!("the per-request memory limit of {} MiB (--memory-limit)", self.config.memory_limit >> 20)
            }
            kind => kind.to_string(),
        }
    }

    /// Sends `response` now and logs the request once its store is torn down.
    fn finish_later(
        self: Arc<Self>,
        label: String,
        status: StatusCode,
        guest: tokio::task::JoinHandle<GuestRun>,
        arrived: Instant,
        held_too_long: bool,
        response: Response,
    ) -> Response {
        tokio::spawn(async move {
            let run = joined(guest).await;
            if run.leaked() > 0 && self.config.deny_leaks {
                Totals::add(&self.totals.leaked_after_head, 1);
                tracing::warn!(target: "leashed::leak", request = %label, held_too_long, "the response had already gone out, so --deny-leaks could not refuse it");
            }
            self.finish(&label, status, &run, arrived);
        });
        response
    }

    /// Counts the request and logs it: a leak report, trap or host bug when there is one, then
    /// the access-log line.
    fn finish(&self, label: &str, status: StatusCode, run: &GuestRun, arrived: Instant) {
        let totals = &self.totals;
        let leaked = run.leaked();
        Totals::add(&totals.requests, 1);
        Totals::add(&totals.lent, run.summary.lent as u64);
        Totals::add(&totals.released, run.summary.released as u64);
        Totals::add(&totals.sockets_left_open, run.still_open.len() as u64);
        if leaked > 0 {
            Totals::add(&totals.leaky_requests, 1);
            Totals::add(&totals.leaked_handles, leaked as u64);
        }
        let suppressed = run.report.suppressed_handles();
        Totals::add(&totals.suppressed_handles, suppressed as u64);
        let outcome = match &run.end {
            End::Returned => "returned",
            End::Trapped(_) => "trapped",
            End::TimedOut(_) => "timed-out",
            End::Cancelled => "cancelled",
        };
        match &run.end {
            End::Trapped(_) => Totals::add(&totals.trapped, 1),
            End::TimedOut(_) => Totals::add(&totals.timed_out, 1),
            End::Cancelled => Totals::add(&totals.cancelled, 1),
            End::Returned => {}
        }
        for event in &run.report.events {
            match event {
                Event::Denied { host, port, times, .. } => {
                    tracing::warn!(target: "leashed::policy", request = %label, "connecting to {host}:{port} was denied by the allowlist{}", times_text(*times))
                }
                // The host-wide cap (`--host-max-connections`) is the one limit not per request.
                Event::LimitReached { what, limit, times, .. } if *what == crate::net::budget::HOST_WIDE_LIMIT => {
                    tracing::warn!(target: "leashed::policy", request = %label, "the host-wide limit of {limit} open connections (--host-max-connections) was reached{}", times_text(*times))
                }
                Event::LimitReached { what, limit, times, .. } => {
                    tracing::warn!(target: "leashed::policy", request = %label, "the per-request limit of {limit} {what} was reached{}", times_text(*times))
                }
                _ => {}
            }
        }
        // The store is the request's own, so what its audit only counted is this request's.
        let uncounted = run.report.forgotten.events;
        if uncounted > 0 {
            tracing::warn!(target: "leashed::policy", request = %label, "{uncounted} more refusals (denials of other names past the first {}) were counted, not logged", crate::audit::KEPT_DENIALS)
        }
        if !run.stderr.trim().is_empty() {
            tracing::warn!(target: "leashed::plugin", request = %label, "the plugin wrote to stderr:\n{}", run.stderr.trim_end());
        }
        match &run.end {
            End::Trapped(why) => {
                tracing::warn!(target: "leashed::access", request = %label, status = status.as_u16(), "the plugin trapped: {why}; {}", reclaimed(run))
            }
            End::TimedOut(after) => {
                tracing::warn!(target: "leashed::access", request = %label, status = status.as_u16(), "the plugin ran past the deadline of {after:?} and was stopped; {}", reclaimed(run))
            }
            End::Cancelled => {
                tracing::warn!(target: "leashed::access", request = %label, "cancelled at shutdown; {}", reclaimed(run))
            }
            End::Returned => {}
        }
        if !run.report.is_clean() || suppressed > 0 {
            tracing::warn!(target: "leashed::leak", request = %label, status = status.as_u16(), leaked, "the plugin left lent handles behind (reclaimed; sockets checked closed)\n{}\n   ", run.report.to_text().trim_end());
        }
        if let Some(why) = &run.os_unreadable {
            tracing::error!(target: "leashed::leak", request = %label, "HOST PROBLEM: after the request's store was dropped, {why}");
        }
        for socket in &run.still_open {
            tracing::error!(target: "leashed::leak", request = %label, "HOST BUG: after the request's store was dropped, the socket of connection #{} (fd {}) is still open", socket.connection, socket.fd);
        }
        // The access line comes last: once it is out, everything about the request is logged.
        let ms = arrived.elapsed().as_secs_f64() * 1000.0;
        let (lent, released, parked) = (run.summary.lent, run.summary.released, run.summary.parked);
        Totals::add(&totals.parked, parked as u64);
        // Sessions the host's lot holds now, this request's and others'.
        let parked_now = self.parking.as_ref().map_or(0, |lot| lot.len());
        tracing::info!(target: "leashed::access", request = %label, status = status.as_u16(), ms = format!("{ms:.1}"), lent, released, parked, parked_now, leaked, suppressed, outcome);
    }
}

/// ", 10000 times" for a refusal the audit counted more than once.
fn times_text(times: u64) -> String {
    if times > 1 { format!(" ({times} times)") } else { String::new() }
}

/// The longest request target a log line and the audit's call name keep.
const MAX_LABEL_TARGET: usize = 512;

/// "GET /items/42": the request's name in the log and the audit, with a target past
/// [`MAX_LABEL_TARGET`] bytes cut (hyper lets a client send a very long one).
fn request_label(method: &hyper::Method, target: &str) -> String {
    if target.len() <= MAX_LABEL_TARGET {
        return format!("{method} {target}");
    }
    let mut end = MAX_LABEL_TARGET;
    while !target.is_char_boundary(end) {
        end -= 1;
    }
    format!("{method} {}… ({} bytes)", &target[..end], target.len())
}

/// What happened to a stopped plugin's handles, for the log.
fn reclaimed(run: &GuestRun) -> String {
    let open = run.report.leaked_handles();
    match run.still_open.len() {
        0 => format!("{open} handles it held were reclaimed and their sockets are closed"),
        n => format!("{open} handles it held were reclaimed, but {n} sockets are still open (host bug)"),
    }
}

/// The guest task's result. A panic in it is a host bug: it is logged as such and the request
/// is answered as if the plugin had trapped (its store is gone with the task).
async fn joined(guest: tokio::task::JoinHandle<GuestRun>) -> GuestRun {
    match guest.await {
        Ok(run) => run,
        Err(e) => {
            tracing::error!(target: "leashed::access", "HOST BUG: the task running a plugin failed: {e}");
            let nothing = crate::audit::Audit::default();
            GuestRun {
                end: End::Trapped(format!("host bug: {e}")),
                report: nothing.store_report(),
                summary: nothing.summary(),
                still_open: Vec::new(),
                os_unreadable: None,
                stderr: String::new(),
            }
        }
    }
}

/// A plain-text response from leashed itself.
pub(super) fn text(status: StatusCode, body: &str) -> Response {
    let mut response = hyper::Response::new(held::full(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}
