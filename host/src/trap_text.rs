//! A trap in a user's words: what kind it was (the memory limit, out of memory, a panic, a stack
//! overflow, the strict drop rule, another bug in the guest), told from the trap itself, the
//! memory limiter, and what the guest wrote to stderr. `leashed query`, `audit` and `serve`
//! all explain traps with it.

/// What kind of trap.
#[derive(Debug, Clone, PartialEq)]
pub enum TrapKind {
    /// A memory growth past the policy's limit was refused.
    MemoryLimit,
    /// The guest's allocator failed (it aborts with `memory allocation of N bytes failed`).
    OutOfMemory,
    /// A panic, with where and what when the guest said so.
    Panic(Option<String>),
    StackOverflow,
    /// The strict close policy: a connection dropped while its streams were lent.
    DropRule(String),
    /// Anything else: the trap's own words, and the guest's last line on stderr if any.
    Bug(String),
}

/// Tells what kind of trap `trap` was.
pub fn classify(trap: &wasmtime::Error, memory_limit_hit: bool, guest_stderr: &str) -> TrapKind {
    if memory_limit_hit {
        return TrapKind::MemoryLimit;
    }
    let cause = first_line(&trap.root_cause().to_string());
    if cause.starts_with("resource has children") {
        return TrapKind::DropRule(cause);
    }
    match trap.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::StackOverflow) => TrapKind::StackOverflow,
        _ if guest_stderr.contains("memory allocation of") => TrapKind::OutOfMemory,
        _ if guest_stderr.contains("panicked at ") => TrapKind::Panic(panic_message(guest_stderr)),
        _ => match guest_stderr.lines().rev().find(|l| !l.trim().is_empty()) {
            Some(said) => TrapKind::Bug(format!("{cause}; the guest said: {}", said.trim())),
            None => TrapKind::Bug(cause),
        },
    }
}

impl TrapKind {
    /// A short name for machine-read reports: `memory-limit`, `out-of-memory`, `panic`,
    /// `stack-overflow`, `drop-rule` or `bug`.
    pub fn name(&self) -> &'static str {
        match self {
            TrapKind::MemoryLimit => "memory-limit",
            TrapKind::OutOfMemory => "out-of-memory",
            TrapKind::Panic(_) => "panic",
            TrapKind::StackOverflow => "stack-overflow",
            TrapKind::DropRule(_) => "drop-rule",
            TrapKind::Bug(_) => "bug",
        }
    }
}

impl std::fmt::Display for TrapKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrapKind::MemoryLimit => write!(f, "the memory limit"),
            TrapKind::OutOfMemory => write!(f, "out of memory"),
            TrapKind::Panic(Some(what)) => write!(f, "a panic ({what})"),
            TrapKind::Panic(None) => write!(f, "a panic"),
            TrapKind::StackOverflow => write!(f, "a stack overflow"),
            TrapKind::DropRule(what) => write!(f, "the strict drop rule ({what})"),
            TrapKind::Bug(what) => write!(f, "a bug in the guest ({what})"),
        }
    }
}

/// `at src/lib.rs:10:5: the message` from a Rust panic's stderr.
fn panic_message(stderr: &str) -> Option<String> {
    let mut lines = stderr.lines().skip_while(|l| !l.contains("panicked at "));
    let place = lines.next()?.split_once("panicked at ")?.1.trim_end_matches(':').to_string();
    match lines.next().map(str::trim).filter(|m| !m.is_empty() && !m.starts_with("note:")) {
        Some(message) => Some(format!("at {place}: {message}")),
        None => Some(format!("at {place}")),
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreachable() -> wasmtime::Error {
        wasmtime::Error::new(wasmtime::Trap::UnreachableCodeReached)
    }

    #[test]
    fn each_kind_is_told_apart() {
        let panic =
            "thread '<unnamed>' panicked at src/lib.rs:10:5:\nindex out of bounds\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(
            classify(&unreachable(), false, panic),
            TrapKind::Panic(Some("at src/lib.rs:10:5: index out of bounds".into()))
        );
        assert_eq!(
            classify(&unreachable(), false, "memory allocation of 1000000 bytes failed\n"),
            TrapKind::OutOfMemory
        );
        assert_eq!(classify(&unreachable(), true, ""), TrapKind::MemoryLimit);
        let overflow = wasmtime::Error::new(wasmtime::Trap::StackOverflow);
        assert_eq!(classify(&overflow, false, ""), TrapKind::StackOverflow);
        let children =
            wasmtime::format_err!("resource has children: connection #1 was dropped while its reader #2 still lent");
        assert!(matches!(classify(&children, false, ""), TrapKind::DropRule(w) if w.contains("reader #2")));
        let python = "Traceback (most recent call last):\n  File \"app.py\", line 3\nValueError: bad\n";
        let TrapKind::Bug(what) = classify(&unreachable(), false, python) else { panic!() };
        assert!(what.ends_with("the guest said: ValueError: bad"), "{what}");
    }
}
