//! A cap on open connections shared by every instance of a host (`Policy::host_connections`):
//! each connection holds a permit from its connect until its socket closes, so past the cap a
//! `connect` of any instance gets `limit-reached`, whatever that instance's own limits allow.
//! A parked socket keeps its permit: it is an open connection of the host. At the cap, a connect
//! closes the socket parked longest to take its place (`net::tcp`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What the audit's `limit-reached` event says the host-wide cap limits (the other limits are
/// an instance's own).
pub const HOST_WIDE_LIMIT: &str = "open connections of the host";

/// The shared cap. Cheap to share: every policy that should count against it holds an `Arc`.
#[derive(Debug)]
pub struct ConnectionBudget {
    max: usize,
    open: AtomicUsize,
}

/// One open connection's place under the cap, given back when dropped.
#[derive(Debug)]
pub struct BudgetPermit(Arc<ConnectionBudget>);

impl ConnectionBudget {
    /// A cap of `max` open connections across the instances that share it.
    pub fn new(max: usize) -> Arc<ConnectionBudget> {
        Arc::new(ConnectionBudget { max, open: AtomicUsize::new(0) })
    }

    /// The most connections open at once.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// A permit for one more connection; `None` at the cap.
    pub fn try_take(self: &Arc<Self>) -> Option<BudgetPermit> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| (open < self.max).then_some(open + 1))
            .ok()
            .map(|_| BudgetPermit(Arc::clone(self)))
    }
}

impl Drop for BudgetPermit {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_stop_at_the_cap_and_come_back() {
        let budget = ConnectionBudget::new(2);
        let (a, b) = (budget.try_take().unwrap(), budget.try_take().unwrap());
        assert!(budget.try_take().is_none());
        assert_eq!(budget.open(), 2);
        drop(a);
        let c = budget.try_take().expect("a dropped permit frees its place");
        drop((b, c));
        assert_eq!(budget.open(), 0);
    }
}
