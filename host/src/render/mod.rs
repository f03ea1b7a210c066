//! Result sets for people and programs: a mysql-client-style table ([`table`]) and JSON
//! ([`json`]). Both write temporal and floating-point values exactly as the server's text
//! protocol does ([`float`] for FLOAT and DOUBLE), so a row prints the same whether it came
//! through a query or a prepared statement. [`stream`] prints both as rows arrive.

pub mod float;
pub mod json;
pub mod stream;
pub mod table;

use crate::bindings::{Column, Date, Datetime, Time, Value};
use float::{Precision, float_text};
use std::fmt::Write;

/// A value as the server's text protocol writes it (what `mariadb --batch` prints); bytes as
/// `0x` and upper-case hex. `None` for NULL.
pub fn value_text(value: &Value, column: &Column) -> Option<String> {
    Some(match value {
        Value::Null => return None,
        Value::Int(v) => zero_filled(v.to_string(), column),
        Value::Uint(v) => zero_filled(v.to_string(), column),
        Value::Float(v) => float_text(f64::from(*v), Precision::Single, column.decimals),
        Value::Double(v) => float_text(*v, Precision::Double, column.decimals),
        Value::Decimal(v) | Value::Text(v) => v.clone(),
        Value::Bytes(bytes) => bytes.iter().fold(String::from("0x"), |mut s, b| {
            let _ = write!(s, "{b:02X}");
            s
        }),
        Value::Date(d) => date_text(d),
        Value::Time(t) => time_text(t),
        Value::Datetime(dt) => datetime_text(dt),
    })
}

/// ZEROFILL, a column flag (YEAR has it).
const ZEROFILL_FLAG: u16 = 0x40;

/// An integer padded with zeros to its ZEROFILL column's display width, as the server writes it.
fn zero_filled(digits: String, column: &Column) -> String {
    let width = column.length as usize;
    if column.flags & ZEROFILL_FLAG == 0 || digits.len() >= width {
        return digits;
    }
    format!("{}{digits}", "0".repeat(width - digits.len()))
}

/// `YYYY-MM-DD`
pub fn date_text(d: &Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)
}

/// `[-]HH:MM:SS[.f…]`, hours at least two digits (up to 838).
pub fn time_text(t: &Time) -> String {
    let sign = if t.negative { "-" } else { "" };
    format!("{sign}{:02}:{:02}:{:02}{}", t.hours, t.minutes, t.seconds, fraction(t.microseconds, t.precision))
}

/// `YYYY-MM-DD HH:MM:SS[.f…]`
pub fn datetime_text(dt: &Datetime) -> String {
    format!(
        "{} {:02}:{:02}:{:02}{}",
        date_text(&dt.date),
        dt.hour,
        dt.minute,
        dt.second,
        fraction(dt.microsecond, dt.precision)
    )
}

/// `.ffffff` cut to `precision` digits; nothing for precision 0.
fn fraction(micros: u32, precision: u8) -> String {
    if precision == 0 {
        return String::new();
    }
    let digits = format!("{:06}", micros.min(999_999));
    format!(".{}", &digits[..usize::from(precision.min(6))])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Temporal values print as MariaDB's text protocol writes them.
    #[test]
    fn temporal_values_print_like_the_server() {
        let date = Date { year: 2024, month: 2, day: 29 };
        let dt = Datetime { date, hour: 23, minute: 59, second: 59, microsecond: 123_456, precision: 6 };
        assert_eq!(datetime_text(&dt), "2024-02-29 23:59:59.123456");
        assert_eq!(datetime_text(&Datetime { precision: 3, ..dt }), "2024-02-29 23:59:59.123");
        assert_eq!(datetime_text(&Datetime { precision: 0, microsecond: 0, ..dt }), "2024-02-29 23:59:59");
        let t = Time { negative: true, hours: 838, minutes: 59, seconds: 59, microseconds: 0, precision: 0 };
        assert_eq!(time_text(&t), "-838:59:59");
        let t = Time { negative: false, hours: 1, minutes: 2, seconds: 3, microseconds: 50_000, precision: 2 };
        assert_eq!(time_text(&t), "01:02:03.05");
        assert_eq!(date_text(&Date { year: 0, month: 0, day: 0 }), "0000-00-00");
    }
}
