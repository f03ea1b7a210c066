//! Outgoing wasi:http requests from served plugins: denied unless `leashed serve` is told to
//! allow them. A plugin's way out is leashed:net, under the allowlist and the audit; plain HTTP
//! would bypass both, so it is off by default.

use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

/// Whether a store's guest may send HTTP requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundHttp {
    /// Every request fails with `HTTP-request-denied`.
    Denied,
    /// Requests go out as `wasmtime serve` sends them.
    Allowed,
}

type SendFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _done: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> SendFuture {
        match self {
            OutboundHttp::Denied => {
                tracing::warn!(uri = %request.uri(), "outgoing HTTP request denied (start `leashed serve` with --allow-outbound-http to allow it)");
                Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
            }
            OutboundHttp::Allowed => Box::new(async move {
                use http_body_util::BodyExt;
                let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
                Ok((response.map(BodyExt::boxed_unsync), Box::new(io) as Box<dyn Future<Output = _> + Send>))
            }),
        }
    }
}
