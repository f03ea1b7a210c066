//! The seam between the allowlist and name lookups: [`Resolve`] turns one name into addresses.
//!
//! The system resolver is the one implementation outside tests. This module only looks names up;
//! which names may be looked up, and for how long, is the allowlist's decision, never its own.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

/// A lookup in progress.
pub type Lookup<'a> = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>>;

/// Looks a host name up. The allowlist calls it only with a name an entry spells out.
pub trait Resolve: Send + Sync + fmt::Debug {
    /// The addresses `name` has on `port`; an empty list or an error means it has none now.
    fn lookup<'a>(&'a self, name: &'a str, port: u16) -> Lookup<'a>;
}

/// The operating system's resolver (`getaddrinfo`, through `tokio::net::lookup_host`).
///
/// A lookup that outlives its caller's timeout cannot be cancelled: it finishes on tokio's
/// blocking pool and its answer is dropped.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn lookup<'a>(&'a self, name: &'a str, port: u16) -> Lookup<'a> {
        Box::pin(async move { Ok(tokio::net::lookup_host((name, port)).await?.collect()) })
    }
}
