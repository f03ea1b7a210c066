//! PyMySQL in a component: PyMySQL 1.1.2 from PyPI, unmodified, in the componentize-py
//! component bench/build.rs builds (bench/pymysql-app), on sockets the leashed host lends. One
//! instance holds one connection across calls; each block is one call of its `block` export,
//! timed here from the host. It calls the exports through the host's public `invoke` (WAVE
//! text), as `leashed audit --invoke` does; it does not judge what the audit reports.

use leashed::{AuditedComponent, AuditedInstance, ComponentSource, Policy};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The component: `$LEASHED_PYMYSQL_COMPONENT`, or the one bench/build.rs built.
pub fn component_path() -> PathBuf {
    std::env::var_os("LEASHED_PYMYSQL_COMPONENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("LEASHED_BENCH_PYMYSQL_COMPONENT").into())
}

pub struct PyMysqlWasm {
    instance: AuditedInstance,
}

impl PyMysqlWasm {
    /// Compiles the component, instantiates it under `policy` and opens its connection to
    /// `url`; or says why not.
    pub async fn start(policy: Policy, url: &str) -> Result<PyMysqlWasm, String> {
        let path = component_path();
        let component = AuditedComponent::new(&ComponentSource::File(path.clone()))
            .map_err(|e| format!("{}: {e:#}; its column is left out", path.display()))?;
        let instance = component.instantiate(policy).await.map_err(|e| format!("{e:#}"))?;
        let mut wasm = PyMysqlWasm { instance };
        wasm.call(&format!("open-session({})", wave_string(url)))
            .await
            .map_err(|e| format!("PyMySQL in the component: {e}"))?;
        Ok(wasm)
    }

    /// Runs `ops` operations of `workload` (`select1`, `rows` with `sql`, or `connect`) in one
    /// call, and returns how long the call took and how many rows the last operation fetched.
    pub async fn block(&mut self, workload: &str, ops: u32, sql: &str) -> (Duration, u64) {
        let call = format!("block({}, {ops}, {})", wave_string(workload), wave_string(sql));
        let started = Instant::now();
        let result = self.call(&call).await;
        let took = started.elapsed();
        let result = result.unwrap_or_else(|e| panic!("PyMySQL in the component, {workload}: {e}"));
        let fetched = result
            .strip_prefix("ok(")
            .and_then(|rest| rest.strip_suffix(')'))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("PyMySQL in the component, {workload}: returned {result}"));
        (took, fetched)
    }

    /// Closes the connection (COM_QUIT).
    pub async fn close(&mut self) {
        let _ = self.call("close-session()").await;
    }

    /// Calls an export; its WAVE result (`ok(…)`), or why it failed (a trap or an `err`).
    async fn call(&mut self, invocation: &str) -> Result<String, String> {
        let outcome = self.instance.invoke(invocation).await.map_err(|e| format!("{e:#}"))?;
        let results = outcome.result.map_err(|trap| format!("trapped: {trap:#}\n{}", outcome.guest_stderr))?;
        let result = results.into_iter().next().unwrap_or_default();
        if result.starts_with("err(") { Err(result) } else { Ok(result) }
    }
}

/// `text` as a WAVE string literal.
fn wave_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' | '\'' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SQL and the URL reach the component as WAVE strings, quotes and all.
    #[test]
    fn wave_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(wave_string("CONCAT('row-', seq)"), r#""CONCAT(\'row-\', seq)""#);
        assert_eq!(wave_string("a\"b\\c\n\u{1}"), r#""a\"b\\c\n\u{1}""#);
    }
}
