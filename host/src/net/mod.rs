//! `leashed:net`: the TCP connections the host lends to guests.

pub mod allowlist;
pub mod budget;
pub mod error;
pub mod parking;
pub mod resolve;
pub mod reuse;
pub mod sites;
pub mod socket;
pub mod tcp;
pub mod tls;
pub mod tls_config;
