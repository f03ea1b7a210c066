//! Fuzzing the protocol core, natively (tests only): arbitrary server bytes at each state of the
//! login, query (text, streaming, binary) and prepare step functions, mutated from packets
//! MariaDB 10.11 really sent (its greeting, column definitions, rows, OK/EOF/ERR, a LOCAL INFILE
//! request). Every input runs under `catch_unwind`; the harness counts inputs, panics, the
//! slowest input and the largest single allocation (a global allocator that watches sizes).
//!
//! A stable harness (a seeded xorshift mutator), since no nightly toolchain, and so no
//! cargo-fuzz, installs here. `scripts/fuzz SECONDS` runs each target for that long and prints
//! the figures; the normal test run gives each target a second.

use super::login::{AuthPolicy, Credentials, Login};
use super::query::{QueryResponse, QueryStep};
use super::statement::{PrepareResponse, PrepareStep};
use crate::bindings::exports::leashed::mysql::types::TlsMode;
use fastrand::Rng;
use mysql_common::constants::CapabilityFlags;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Watches allocation sizes: the largest single allocation since the last reset.
struct Watching;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only records sizes.
unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Watching = Watching;

/// The private MariaDB 10.11's greeting, captured from a connection to it.
const GREETING: &[u8] = b"\x0a5.5.5-10.11.19-MariaDB-0+deb12u1\x00}o\x00\x00B5\x22G$z_J\x00\xfe\xff\x08\x02\x00\xff\x81\x15\x00\x00\x00\x00\x00\x00\x1d\x00\x00\x006lBCjk\x5cj!aEv\x00mysql_native_password\x00";
/// `SELECT 1`'s column definition as MariaDB 10.11 sends it.
const COLUMN_ONE: &[u8] = b"\x03def\x00\x00\x00\x011\x00\x0c\x3f\x00\x01\x00\x00\x00\x08\x81\x00\x00\x00\x00";
const OK: &[u8] = b"\x00\x00\x00\x02\x00\x00\x00";
const EOF_OK: &[u8] = b"\xfe\x00\x00\x02\x00\x00\x00";
const ERR: &[u8] = b"\xff\x7a\x04#42S02Table 'leashed_test.nope' doesn't exist";
const AUTH_SWITCH: &[u8] = b"\xfeclient_ed25519\x00abcdefghijklmnopqrstuvwxyz012345\x00";
const MORE_DATA: &[u8] = b"\x01\x03";
const LOCAL_INFILE: &[u8] = b"\xfbdata.csv";
/// A COM_STMT_PREPARE answer: statement 1, one column, one parameter.
const PREPARE_OK: &[u8] = b"\x00\x01\x00\x00\x00\x01\x00\x01\x00\x00\x00\x00";
/// A binary row of one LONGLONG.
const BINARY_ROW: &[u8] = b"\x00\x00\x2a\x00\x00\x00\x00\x00\x00\x00";

/// The targets, each with its seed conversations (packet sequences).
fn seeds(target: Target) -> Vec<Vec<&'static [u8]>> {
    match target {
        Target::Login => vec![vec![GREETING, OK], vec![GREETING, AUTH_SWITCH, OK], vec![GREETING, MORE_DATA, ERR]],
        Target::Query | Target::Streaming => vec![
            vec![b"\x01", COLUMN_ONE, b"\x011", EOF_OK],
            vec![OK],
            vec![ERR],
            vec![LOCAL_INFILE, OK],
            vec![b"\x02", COLUMN_ONE, COLUMN_ONE, b"\x011\xfb", b"\x0212\x00", EOF_OK],
        ],
        Target::Binary => vec![vec![b"\x01", COLUMN_ONE, BINARY_ROW, EOF_OK], vec![OK]],
        Target::Prepare => vec![vec![PREPARE_OK, COLUMN_ONE, COLUMN_ONE], vec![ERR]],
    }
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Login,
    Query,
    Streaming,
    Binary,
    Prepare,
}

fn caps() -> CapabilityFlags {
    CapabilityFlags::CLIENT_PROTOCOL_41
        | CapabilityFlags::CLIENT_DEPRECATE_EOF
        | CapabilityFlags::CLIENT_MULTI_RESULTS
        | CapabilityFlags::CLIENT_LOCAL_FILES
        | CapabilityFlags::CLIENT_SESSION_TRACK
}

const CREDENTIALS: Credentials<'static> = Credentials { user: "app", password: Some("secret"), database: Some("shop") };

/// A plain-TCP login with the defaults.
fn login_policy() -> AuthPolicy {
    AuthPolicy {
        local_infile: false,
        tls: TlsMode::Disabled,
        server_key_pem: None,
        allow_cleartext: false,
        max_packet: 1 << 24,
    }
}

/// Feeds one conversation to the target's step function, to its end or first error.
fn run(target: Target, packets: &[Vec<u8>]) {
    let Some((first, rest)) = packets.split_first() else { return };
    match target {
        Target::Login => {
            let Ok(mut start) = Login::start(first, &CREDENTIALS, login_policy()) else { return };
            for packet in rest {
                if start.login.step(packet).is_err() {
                    return;
                }
            }
        }
        Target::Query | Target::Streaming | Target::Binary => {
            let mut reader = match target {
                Target::Streaming => QueryResponse::streaming(caps()),
                Target::Binary => QueryResponse::binary(caps()),
                _ => QueryResponse::new(caps()),
            };
            for packet in packets {
                match reader.step(packet) {
                    Ok(QueryStep::Done(_)) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        }
        Target::Prepare => {
            let mut reader = PrepareResponse::new(caps());
            for packet in packets {
                match reader.step(packet) {
                    Ok(PrepareStep::Done(_)) | Err(_) => return,
                    Ok(PrepareStep::NeedPacket) => {}
                }
            }
        }
    }
}

/// Bytes that mean something in the protocol: length-encoded integer markers, header bytes.
const INTERESTING: [u8; 8] = [0x00, 0x01, 0x7f, 0xfb, 0xfc, 0xfd, 0xfe, 0xff];

/// A few random edits of one packet of a seed conversation (or of its order).
fn mutate(rng: &mut Rng, seed: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut packets: Vec<Vec<u8>> = seed.iter().map(|p| p.to_vec()).collect();
    for _ in 0..1 + rng.usize(..4) {
        let i = rng.usize(..packets.len());
        let packet = &mut packets[i];
        match rng.usize(..8) {
            0 if !packet.is_empty() => {
                let at = rng.usize(..packet.len());
                packet[at] ^= 1 << rng.usize(..8);
            }
            1 if !packet.is_empty() => {
                let at = rng.usize(..packet.len());
                packet[at] = INTERESTING[rng.usize(..INTERESTING.len())];
            }
            2 => packet.truncate(rng.usize(..packet.len() + 1)),
            3 => {
                let at = rng.usize(..packet.len() + 1);
                let extra: Vec<u8> = (0..1 + rng.usize(..16)).map(|_| rng.u8(..)).collect();
                packet.splice(at..at, extra);
            }
            4 if !packet.is_empty() => {
                let at = rng.usize(..packet.len());
                packet[at..].iter_mut().take(8).for_each(|b| *b = 0xff);
            }
            5 => {
                let copy = packets[rng.usize(..packets.len())].clone();
                packets.insert(rng.usize(..packets.len() + 1), copy);
            }
            6 if packets.len() > 1 => {
                packets.remove(rng.usize(..packets.len()));
            }
            _ => {
                let random: Vec<u8> = (0..rng.usize(..64)).map(|_| rng.u8(..)).collect();
                packets[i] = random;
            }
        }
    }
    packets
}

/// What a fuzz run found.
struct Found {
    inputs: u64,
    panics: Vec<String>,
    slowest: Duration,
    largest_allocation: usize,
}

fn fuzz(target: Target, budget: Duration, seed: u64) -> Found {
    let seeds = seeds(target);
    let mut rng = Rng::with_seed(seed);
    let mut found = Found { inputs: 0, panics: Vec::new(), slowest: Duration::ZERO, largest_allocation: 0 };
    let until = Instant::now() + budget;
    while Instant::now() < until {
        let pick = rng.usize(..seeds.len());
        let input = mutate(&mut rng, &seeds[pick]);
        LARGEST.store(0, Ordering::Relaxed);
        let started = Instant::now();
        let outcome = std::panic::catch_unwind(|| run(target, &input));
        found.slowest = found.slowest.max(started.elapsed());
        found.largest_allocation = found.largest_allocation.max(LARGEST.load(Ordering::Relaxed));
        found.inputs += 1;
        if outcome.is_err() && found.panics.len() < 5 {
            found.panics.push(format!("{input:02x?}"));
        }
    }
    found
}

/// The seeds are conversations the step functions accept: mutations start from real states.
#[test]
fn the_seeds_are_accepted() {
    let mut start = Login::start(GREETING, &CREDENTIALS, login_policy()).expect("the captured greeting");
    assert!(matches!(start.login.step(OK), Ok(super::login::LoginStep::Done(_))));
    let mut reader = QueryResponse::new(caps());
    let steps: Vec<_> = seeds(Target::Query)[0].iter().map(|p| reader.step(p).is_ok()).collect();
    assert_eq!(steps, [true; 4]);
    let mut reader = PrepareResponse::new(caps());
    assert!(seeds(Target::Prepare)[0].iter().all(|p| reader.step(p).is_ok()));
}

/// Each target for `LEASHED_FUZZ_SECONDS` (default 1): no panic, no input slower than a
/// second (a hang), no single allocation over 64 MiB (the most a packet may announce is 16 MiB).
#[test]
fn the_protocol_core_survives_arbitrary_server_bytes() {
    let seconds: f64 = std::env::var("LEASHED_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let seed: u64 = std::env::var("LEASHED_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x1ea5_4ed);
    // Panics are caught and counted; keep their messages out of the output.
    std::panic::set_hook(Box::new(|_| {}));
    let mut failures = Vec::new();
    for target in [Target::Login, Target::Query, Target::Streaming, Target::Binary, Target::Prepare] {
        let found = fuzz(target, Duration::from_secs_f64(seconds), seed);
        println!(
            "fuzz {target:<9?} {:>9} inputs in {seconds} s, {} panics, slowest {:.1} ms, largest allocation {} KiB",
            found.inputs,
            found.panics.len(),
            found.slowest.as_secs_f64() * 1e3,
            found.largest_allocation / 1024
        );
        if !found.panics.is_empty() {
            failures.push(format!("{target:?} panicked on: {:?}", found.panics));
        }
        if found.slowest > Duration::from_secs(1) {
            failures.push(format!("{target:?}: an input took {:?}", found.slowest));
        }
        if found.largest_allocation > 64 << 20 {
            failures.push(format!("{target:?}: an allocation of {} bytes", found.largest_allocation));
        }
    }
    let _ = std::panic::take_hook();
    assert!(failures.is_empty(), "{failures:#?}");
}
