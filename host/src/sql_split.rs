//! Splitting a script into statements at `;`, as the mysql client does before sending them one
//! by one: a `;` inside a quoted string or identifier ('…', "…", `…`) or a comment (`-- …`,
//! `# …`, `/* … */`) does not end a statement. Statements keep their text exactly (comments
//! included); empty ones, and ones of comments alone, are dropped. The mysql client's `DELIMITER` command is not supported:
//! a compound statement (a procedure body) must be sent on its own.

/// The statements of `script`, in order, each without its final `;`.
pub fn statements(script: &str) -> Vec<&str> {
    let bytes = script.as_bytes();
    let mut out = Vec::new();
    // Whether the statement so far holds more than whitespace and comments.
    let (mut start, mut i, mut has_code) = (0, 0, false);
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"' | b'`') => {
                i = after_quoted(bytes, i, quote);
                has_code = true;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') && bytes.get(i + 2).is_none_or(u8::is_ascii_whitespace) => {
                i = after_line(bytes, i)
            }
            b'#' => i = after_line(bytes, i),
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = find(bytes, i + 2, b"*/").map_or(bytes.len(), |end| end + 2);
            }
            b';' => {
                if has_code {
                    out.push(script[start..i].trim());
                }
                i += 1;
                (start, has_code) = (i, false);
            }
            b => {
                has_code |= !b.is_ascii_whitespace();
                i += 1;
            }
        }
    }
    if has_code {
        out.push(script[start..].trim());
    }
    out
}

/// The index after the quoted text starting at `open`: a doubled quote and (except in
/// backquoted identifiers) a backslash escape stay inside it. Unterminated: the end.
fn after_quoted(bytes: &[u8], open: usize, quote: u8) -> usize {
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quote != b'`' => i += 2,
            b if b == quote && bytes.get(i + 1) == Some(&quote) => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

fn after_line(bytes: &[u8], from: usize) -> usize {
    bytes[from..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |n| from + n + 1)
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|n| from + n)
}

#[cfg(test)]
mod tests {
    use super::statements;

    #[test]
    fn semicolons_split_outside_quotes_and_comments() {
        assert_eq!(statements("SELECT 1; SELECT 2;\n"), ["SELECT 1", "SELECT 2"]);
        assert_eq!(
            statements("SELECT ';', \"a;b\", `c;d`; SELECT 'it''s; fine'"),
            ["SELECT ';', \"a;b\", `c;d`", "SELECT 'it''s; fine'"]
        );
        assert_eq!(statements(r"SELECT 'a\';b'; SELECT 2"), [r"SELECT 'a\';b'", "SELECT 2"]);
        assert_eq!(
            statements("SELECT 1 -- not; here\n; # nor; here\nSELECT /* or; here */ 2"),
            ["SELECT 1 -- not; here", "# nor; here\nSELECT /* or; here */ 2"]
        );
        assert_eq!(statements("SELECT 5--1; SELECT 2"), ["SELECT 5--1", "SELECT 2"], "-- needs a space");
        assert_eq!(statements(" ; ;\n"), Vec::<&str>::new());
        assert_eq!(statements("SELECT 1;\n-- the end\n"), ["SELECT 1"], "a trailing comment is no statement");
        assert_eq!(statements("SELECT 'unterminated; still'"), ["SELECT 'unterminated; still'"]);
    }
}
