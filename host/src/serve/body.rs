//! Request bodies as the host reads them: up to `--body-buffer` before the request takes a slot,
//! so that a slow upload costs a buffer and never an instance; a longer body goes on to the
//! plugin as a stream. All of it under `--body-min-rate` ([`BodyRate`]). This module only
//! reads: what the client is answered is request.rs's to decide.

use super::limits::{BodyRate, ClientLimits};
use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;
use tokio::time::Sleep;
use wasmtime_wasi_http::Error as BodyError;

/// Why a request's body could not be read before its slot. The client's doing, either way.
#[derive(Debug)]
pub enum Unread {
    /// It arrived below `--body-min-rate` after the grace, with `received` bytes so far.
    TooSlow { received: u64, min_rate: u64 },
    /// It had not arrived by the request's deadline.
    PastDeadline { received: u64 },
    /// The connection failed, or the body's framing was bad.
    Broken(hyper::Error),
}

/// Reads `request`'s body up to `--body-buffer`, under the minimum rate and by `deadline`.
/// The request comes back with a body that gives what was read, then whatever is left.
pub async fn read_ahead(
    request: hyper::Request<Incoming>,
    limits: &ClientLimits,
    label: &str,
    deadline: Instant,
) -> Result<hyper::Request<RequestBody>, Unread> {
    let (parts, incoming) = request.into_parts();
    let mut rated = Rated::new(incoming, limits);
    let mut read = BytesMut::new();
    let mut trailers = None;
    let mut ended = rated.body.is_end_stream();
    let reading = async {
        while !ended && read.len() < limits.body_buffer {
            match std::future::poll_fn(|cx| rated.poll_frame(cx)).await {
                None => ended = true,
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => read.extend_from_slice(&data),
                    Err(frame) => {
                        trailers = frame.into_trailers().ok();
                        ended = true;
                    }
                },
                Some(Err(ReadError::TooSlow)) => {
                    return Err(Unread::TooSlow { received: rated.rate.received(), min_rate: rated.rate.min_rate() });
                }
                Some(Err(ReadError::Broken(e))) => return Err(Unread::Broken(e)),
            }
        }
        Ok(())
    };
    match tokio::time::timeout_at(deadline.into(), reading).await {
        Ok(Ok(())) => {}
        Ok(Err(unread)) => return Err(unread),
        Err(_) => return Err(Unread::PastDeadline { received: rated.rate.received() }),
    }
    let rest = (!ended).then(|| Streamed { rated, label: label.to_string() });
    let body = RequestBody { read: Some(read.freeze()).filter(|b| !b.is_empty()), trailers, rest };
    Ok(hyper::Request::from_parts(parts, body))
}

/// A request body as the plugin gets it: what the host read before the request took a slot,
/// then (for a body longer than `--body-buffer`) the rest, streamed from the client under the
/// minimum rate, then the trailers.
pub struct RequestBody {
    read: Option<Bytes>,
    trailers: Option<HeaderMap>,
    rest: Option<Streamed>,
}

impl RequestBody {
    /// Whether the body was longer than `--body-buffer`, so the rest is read as the plugin runs.
    pub fn streams_on(&self) -> bool {
        self.rest.is_some()
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if let Some(read) = self.read.take() {
            return Poll::Ready(Some(Ok(Frame::data(read))));
        }
        if let Some(rest) = &mut self.rest {
            match ready!(rest.poll_frame(cx)) {
                Some(frame) => return Poll::Ready(Some(frame)),
                None => self.rest = None,
            }
        }
        Poll::Ready(self.trailers.take().map(|trailers| Ok(Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.read.is_none()
            && self.trailers.is_none()
            && self.rest.as_ref().is_none_or(|rest| rest.rated.body.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let read = self.read.as_ref().map_or(0, |b| b.len() as u64);
        let mut hint = self.rest.as_ref().map_or_else(|| SizeHint::with_exact(0), |rest| rest.rated.body.size_hint());
        hint.set_lower(hint.lower() + read);
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper + read);
        }
        hint
    }
}

/// The part of a body past `--body-buffer`, read while the plugin runs. A client below the
/// rate gets its body cut off (the plugin's read fails with `connection-read-timeout`), and is
/// logged.
struct Streamed {
    rated: Rated,
    label: String,
}

impl Streamed {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        Poll::Ready(ready!(self.rated.poll_frame(cx)).map(|frame| {
            frame.map_err(|e| match e {
                ReadError::TooSlow => {
                    let rate = &self.rated.rate;
                    tracing::warn!(target: "leashed::client", request = %self.label, received = rate.received(), "the client sent its body below {} bytes/s (--body-min-rate): the rest is cut off", rate.min_rate());
                    BodyError::ConnectionReadTimeout
                }
                ReadError::Broken(e) => BodyError::Hyper(e),
            })
        }))
    }
}

enum ReadError {
    TooSlow,
    Broken(hyper::Error),
}

/// The client's body under the minimum rate: a timer runs while the reader waits on the client.
struct Rated {
    body: Incoming,
    rate: BodyRate,
    /// Fires when the wait has lasted longer than the bytes so far allow.
    timer: Option<(Instant, Pin<Box<Sleep>>)>,
    failed: bool,
}

impl Rated {
    fn new(body: Incoming, limits: &ClientLimits) -> Self {
        Rated { body, rate: BodyRate::new(limits), timer: None, failed: false }
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, ReadError>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let bytes = frame.data_ref().map_or(0, Bytes::len);
                self.rate.arrived(bytes, Instant::now());
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.failed = true;
                Poll::Ready(Some(Err(ReadError::Broken(e))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let by = self.rate.waiting(Instant::now());
                let timer = match &mut self.timer {
                    Some((at, timer)) => {
                        if *at != by {
                            timer.as_mut().reset(by.into());
                            *at = by;
                        }
                        timer
                    }
                    None => &mut self.timer.insert((by, Box::pin(tokio::time::sleep_until(by.into())))).1,
                };
                if timer.as_mut().poll(cx).is_ready() {
                    self.failed = true;
                    return Poll::Ready(Some(Err(ReadError::TooSlow)));
                }
                Poll::Pending
            }
        }
    }
}
