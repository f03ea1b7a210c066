//! The guest's linear memory, watched: a store limiter that records the largest size the guest's
//! memories grew to, so "runs in bounded memory" can be measured (and capped if a policy wants).

/// Records memory growth for one store; never refuses it.
#[derive(Debug, Default)]
pub struct MemoryWatch {
    /// The largest size any of the guest's linear memories reached, in bytes.
    pub peak_bytes: usize,
}

impl wasmtime::ResourceLimiter for MemoryWatch {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.peak_bytes = self.peak_bytes.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, _desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(true)
    }
}
