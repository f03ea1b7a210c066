//! Holding a response back until its request's audit is known (`--deny-leaks`): the body is read
//! into memory up to [`HELD_BODY_LIMIT`]. A body that ends within it can still be replaced by a
//! 500; a longer one goes out as it comes (its head first), and a leak is then only logged.

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use std::pin::Pin;
use std::task::{Context, Poll};
use wasmtime_wasi_http::Error as BodyError;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// The most of a body held back while its request's audit is pending.
pub const HELD_BODY_LIMIT: usize = 1 << 20;

/// A response read as far as it could be held.
pub enum Held {
    /// The whole body: the response can still be replaced.
    Complete(http::response::Parts, Bytes),
    /// The body passed the limit, or failed: it must go out as it is.
    Streaming(hyper::Response<HyperOutgoingBody>),
}

/// Reads `response`'s body until it ends, fails, or passes [`HELD_BODY_LIMIT`].
pub async fn hold(response: hyper::Response<HyperOutgoingBody>) -> Held {
    let (parts, mut body) = response.into_parts();
    let mut held = BytesMut::new();
    loop {
        match body.frame().await {
            None => return Held::Complete(parts, held.freeze()),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    held.extend_from_slice(&data);
                    if held.len() > HELD_BODY_LIMIT {
                        let rest = Prefixed { prefix: Some(held.freeze()), rest: body, error: None };
                        return Held::Streaming(hyper::Response::from_parts(parts, rest.boxed_unsync()));
                    }
                }
                // Trailers end the body; leashed's held responses carry none.
                Err(_trailers) => return Held::Complete(parts, held.freeze()),
            },
            Some(Err(error)) => {
                let failed = Prefixed { prefix: Some(held.freeze()), rest: body, error: Some(error) };
                return Held::Streaming(hyper::Response::from_parts(parts, failed.boxed_unsync()));
            }
        }
    }
}

/// A complete body as a response body.
pub fn full(bytes: Bytes) -> HyperOutgoingBody {
    http_body_util::Full::new(bytes).map_err(|never| match never {}).boxed_unsync()
}

/// The bytes already read, then the rest of the body (or the error that cut it short).
struct Prefixed {
    prefix: Option<Bytes>,
    rest: HyperOutgoingBody,
    error: Option<BodyError>,
}

impl Body for Prefixed {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        if let Some(error) = self.error.take() {
            return Poll::Ready(Some(Err(error)));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }
}
