//! The guest's linear memory, watched: a store limiter that records the largest size the guest's
//! memories grew to, so "runs in bounded memory" can be measured, and that traps a guest whose
//! memories would grow past a cap (`leashed serve --memory-limit`).

/// Records memory growth for one store; refuses growth past `limit_bytes`, if set.
#[derive(Debug, Default)]
pub struct MemoryWatch {
    /// The largest size any of the guest's linear memories reached, in bytes.
    pub peak_bytes: usize,
    /// The most all of the store's linear memories may take together; `None`: no cap.
    pub limit_bytes: Option<usize>,
    /// What the store's memories hold now, together.
    total_bytes: usize,
    /// Set when a growth was refused, so the caller can say why the guest trapped.
    pub limit_hit: bool,
}

impl MemoryWatch {
    /// What the store's linear memories hold now, together, in bytes.
    pub fn current_bytes(&self) -> usize {
        self.total_bytes
    }

    /// A watch that traps the guest when its memories would exceed `limit_bytes` together.
    pub fn capped(limit_bytes: usize) -> Self {
        MemoryWatch { limit_bytes: Some(limit_bytes), ..MemoryWatch::default() }
    }
}

impl wasmtime::ResourceLimiter for MemoryWatch {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.total_bytes - current.min(self.total_bytes) + desired;
        if let Some(limit) = self.limit_bytes
            && total > limit
        {
            self.limit_hit = true;
            wasmtime::bail!(
                "the guest's memory limit is reached: growing to {} MiB would pass the limit of {} MiB",
                total.div_ceil(1 << 20),
                limit >> 20
            );
        }
        self.total_bytes = total;
        self.peak_bytes = self.peak_bytes.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, _desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(true)
    }
}
