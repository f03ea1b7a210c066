//! The `leashed` subcommands, one file each, and what they share: exit statuses, usage errors,
//! and the parsing of `--allow` and durations.

pub mod audit;
pub mod compose;
pub mod query;
mod query_input;
pub mod serve;

use leashed::{AllowEntry, Allowlist};
use std::time::Duration;

/// Exit status: success.
pub const EXIT_OK: u8 = 0;
/// Exit status: the server refused (query or login error) or could not be reached.
pub const EXIT_FAILED: u8 = 1;
/// Exit status: the command line is wrong (bad URL, missing or unusable component).
pub const EXIT_USAGE: u8 = 2;
/// Exit status of `audit --deny-leaks` when anything leaked.
pub const EXIT_LEAKED: u8 = 3;

/// Prints a usage error in one line, pointing at the subcommand's help.
pub fn usage_of(command: &str, message: &str) -> u8 {
    eprintln!("error: {message} (see `leashed {command} --help`)");
    EXIT_USAGE
}

/// A positive, finite number of seconds.
pub fn seconds(value: f64) -> Option<Duration> {
    (value.is_finite() && value > 0.0).then(|| Duration::from_secs_f64(value))
}

/// The `--allow` entries, or the first that does not parse.
pub fn parse_allowlist(texts: &[String]) -> Result<Allowlist, String> {
    let entries = texts
        .iter()
        .map(|text| text.parse::<AllowEntry>().map_err(|e| format!("--allow {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Allowlist::new(entries))
}
