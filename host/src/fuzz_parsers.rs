//! Fuzzing the parsers of what users type (tests only): `mysql://` URLs, `--allow` entries and
//! `--param` values, mutated from valid ones. Every input runs under `catch_unwind`; none may
//! panic or take longer than a second. `scripts/fuzz SECONDS` runs it longer and prints the
//! figures; the normal test run gives each parser a second.

use crate::mysql_url::MysqlUrl;
use crate::net::allowlist::AllowEntry;
use crate::param::parse_param;
use fastrand::Rng;
use std::time::{Duration, Instant};

const URLS: &[&str] =
    &["mysql://app:s%40cret@db.internal:3306/shop", "mariadb://root@127.0.0.1/", "mysql://u:p@[::1]:3307/db?x=1"];
const ALLOWS: &[&str] = &["127.0.0.1:3306", "10.0.0.0/8:5000-5010", "db.internal:3306", "[::1]:3306", "*:3306"];
const PARAMS: &[&str] =
    &["int:-5", "uint:7", "float:1.5", "double:2.5e-3", "decimal:12.50", "hex:00ff", "text:x", "null"];

/// Characters that mean something to these parsers.
const INTERESTING: &[char] = &[':', '/', '@', '%', '[', ']', '-', '.', '*', '?', '#', '0', '9', 'é', '\0', ' '];

fn mutate(rng: &mut Rng, seed: &str) -> String {
    let mut chars: Vec<char> = seed.chars().collect();
    for _ in 0..1 + rng.usize(..4) {
        let at = rng.usize(..chars.len() + 1);
        match rng.usize(..4) {
            0 if at < chars.len() => {
                chars.remove(at);
            }
            1 => chars.insert(at, INTERESTING[rng.usize(..INTERESTING.len())]),
            2 => chars.insert(at, char::from_u32(rng.u32(..0x3000)).unwrap_or('x')),
            _ => chars.truncate(at),
        }
    }
    chars.into_iter().collect()
}

fn fuzz(name: &str, seeds: &[&str], parse: impl Fn(&str) + std::panic::RefUnwindSafe, budget: Duration) -> Vec<String> {
    let mut rng =
        Rng::with_seed(std::env::var("LEASHED_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed));
    let (mut inputs, mut panics, mut slowest) = (0u64, Vec::new(), Duration::ZERO);
    let until = Instant::now() + budget;
    while Instant::now() < until {
        let pick = rng.usize(..seeds.len());
        let input = mutate(&mut rng, seeds[pick]);
        let started = Instant::now();
        if std::panic::catch_unwind(|| parse(&input)).is_err() && panics.len() < 5 {
            panics.push(input);
        }
        slowest = slowest.max(started.elapsed());
        inputs += 1;
    }
    println!(
        "fuzz {name:<10} {inputs:>9} inputs in {} s, {} panics, slowest {:.1} ms",
        budget.as_secs_f64(),
        panics.len(),
        slowest.as_secs_f64() * 1e3
    );
    let mut failures: Vec<String> = panics.into_iter().map(|p| format!("{name} panicked on {p:?}")).collect();
    if slowest > Duration::from_secs(1) {
        failures.push(format!("{name}: an input took {slowest:?}"));
    }
    failures
}

#[test]
fn the_parsers_of_user_input_never_panic() {
    let seconds: f64 = std::env::var("LEASHED_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let budget = Duration::from_secs_f64(seconds);
    std::panic::set_hook(Box::new(|_| {}));
    let mut failures = fuzz("url", URLS, |s| drop(MysqlUrl::parse(s)), budget);
    failures.extend(fuzz("allow", ALLOWS, |s| drop(s.parse::<AllowEntry>()), budget));
    failures.extend(fuzz("param", PARAMS, |s| drop(parse_param(s)), budget));
    let _ = std::panic::take_hook();
    assert!(failures.is_empty(), "{failures:#?}");
}
