//! `--param` values for prepared statements, from the command line.
//!
//! A parameter is sent as text unless it says otherwise: the server converts text to the column's
//! type, as it does for a quoted literal. A prefix picks a binary type when that matters: `null`,
//! `int:-5`, `uint:18446744073709551615`, `float:1.5`, `double:2.5e-3`, `decimal:12.50`,
//! `hex:00ff` (bytes) and `text:...` (text that would otherwise look like a prefix).

use crate::bindings::Value;

/// Parses one `--param` argument.
pub fn parse_param(arg: &str) -> Result<Value, String> {
    if arg == "null" {
        return Ok(Value::Null);
    }
    let Some((prefix, rest)) = arg.split_once(':') else { return Ok(Value::Text(arg.to_string())) };
    let bad = |what: &str| format!("--param {arg}: not {what}");
    Ok(match prefix {
        "int" => Value::Int(rest.parse().map_err(|_| bad("a signed 64-bit integer"))?),
        "uint" => Value::Uint(rest.parse().map_err(|_| bad("an unsigned 64-bit integer"))?),
        "float" => Value::Float(rest.parse().map_err(|_| bad("a number"))?),
        "double" => Value::Double(rest.parse().map_err(|_| bad("a number"))?),
        "decimal" => {
            let digits = rest.strip_prefix('-').unwrap_or(rest);
            let valid = digits.chars().filter(|&c| c == '.').count() <= 1
                && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
                && digits.chars().any(|c| c.is_ascii_digit());
            if !valid {
                return Err(bad("a decimal number such as -12.50"));
            }
            Value::Decimal(rest.to_string())
        }
        "hex" => Value::Bytes(hex(rest).ok_or_else(|| bad("an even number of hex digits"))?),
        "text" => Value::Text(rest.to_string()),
        _ => Value::Text(arg.to_string()),
    })
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_typed_prefixes_and_errors() {
        assert_eq!(parse_param("héllo").unwrap(), Value::Text("héllo".into()));
        assert_eq!(parse_param("a:b").unwrap(), Value::Text("a:b".into()), "an unknown prefix is text");
        assert_eq!(parse_param("null").unwrap(), Value::Null);
        assert_eq!(parse_param("text:null").unwrap(), Value::Text("null".into()));
        assert_eq!(parse_param("int:-5").unwrap(), Value::Int(-5));
        assert_eq!(parse_param("uint:18446744073709551615").unwrap(), Value::Uint(u64::MAX));
        assert_eq!(parse_param("double:2.5e-3").unwrap(), Value::Double(0.0025));
        assert_eq!(parse_param("decimal:-12.50").unwrap(), Value::Decimal("-12.50".into()));
        assert_eq!(parse_param("hex:00ff").unwrap(), Value::Bytes(vec![0, 255]));
        assert!(parse_param("int:x").unwrap_err().contains("not a signed 64-bit integer"));
        assert!(parse_param("hex:abc").is_err());
        assert!(parse_param("decimal:1.2.3").is_err());
        assert!(parse_param("decimal:-").is_err());
    }
}
