//! leashed-bench: benchmarks, not tests. `compare` (scripts/bench) runs leashed against the
//! native `mysql` crate and PyMySQL (natively and in a component), workload by workload,
//! alternating in one run; `audit_overhead` (scripts/bench-audit) measures what the audit's
//! detail costs.
//!
//! - `stats.rs`: medians and bootstrap intervals of per-round ratios.
//! - `rounds.rs`: running clients in rotating order, round after round, and printing a row.
//! - `pymysql.rs`: PyMySQL in a Python process of its own, driven block by block.
//! - `pymysql_wasm.rs`: PyMySQL in a componentize-py component on lent sockets, one call a block.
//! - `http.rs`: a keep-alive HTTP/1.1 GET, for requests through `leashed serve`.
//! - `native.rs`: the native `mysql` crate's options (TCP, as leashed).

pub mod http;
pub mod native;
pub mod pymysql;
pub mod pymysql_wasm;
pub mod rounds;
pub mod stats;
