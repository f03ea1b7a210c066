//! Leak suppressions, as LeakSanitizer has them: a file of patterns, one per line, each matched
//! against the frames of a leaked handle's creation site. A suppressed leak is still shown and
//! counted, but does not make a report unclean (so `--deny-leaks` lets it pass).
//!
//! File format: `#` starts a comment; a line is `leak:PATTERN` or just `PATTERN`. A pattern
//! matches a frame when it occurs in it, with `*` standing for any run of characters.

use std::path::Path;

/// The patterns of a suppressions file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Suppressions {
    patterns: Vec<String>,
}

impl Suppressions {
    /// Reads a suppressions file; an error names the file and the line.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the suppressions file {}: {e}", path.display()))?;
        Suppressions::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let mut patterns = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let pattern = match line.split_once(':') {
                Some(("leak", pattern)) => pattern.trim(),
                Some((kind @ ("race" | "thread" | "mutex" | "signal" | "deadlock" | "called_from_lib"), _)) => {
                    return Err(format!("line {}: `{kind}:` suppressions are not leak suppressions", number + 1));
                }
                _ => line,
            };
            if pattern.trim_matches('*').is_empty() {
                return Err(format!("line {}: the pattern `{pattern}` would suppress every leak", number + 1));
            }
            patterns.push(pattern.to_string());
        }
        Ok(Suppressions { patterns })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The first pattern that matches any frame of any of the sites.
    pub fn matching<'a>(&self, sites: impl IntoIterator<Item = &'a [String]> + Clone) -> Option<&str> {
        self.patterns
            .iter()
            .map(String::as_str)
            .find(|pattern| sites.clone().into_iter().any(|site| site.iter().any(|frame| matches(pattern, frame))))
    }
}

/// Whether `pattern` (with `*` wildcards) occurs in `frame`.
fn matches(pattern: &str, frame: &str) -> bool {
    let mut rest = frame;
    let mut parts = pattern.split('*').filter(|p| !p.is_empty());
    let Some(first) = parts.next() else { return true };
    let Some(at) = rest.find(first) else { return false };
    rest = &rest[at + first.len()..];
    for part in parts {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both spellings parse, comments are ignored, and wildcards match inside frames.
    #[test]
    fn patterns_match_frames() {
        let s = Suppressions::parse("# known\nleak:keep_*_connection\nitems::cache  # ours\n").unwrap();
        let site = vec!["fixture_leaky_plugin::keep_the_connection".to_string()];
        assert_eq!(s.matching([&site[..]]), Some("keep_*_connection"));
        let other = vec!["items::handler".to_string()];
        assert_eq!(s.matching([&other[..]]), None);
    }

    /// A pattern that matches everything, or another sanitizer's kind, is refused.
    #[test]
    fn bad_lines_are_refused_with_their_number() {
        assert_eq!(Suppressions::parse("\n*\n").unwrap_err(), "line 2: the pattern `*` would suppress every leak");
        assert!(Suppressions::parse("race:foo").unwrap_err().starts_with("line 1:"));
    }
}
