//! FLOAT and DOUBLE written as MariaDB's text protocol writes them, so a value prints the same
//! whichever protocol carried it.
//!
//! The server writes a DOUBLE with the fewest digits that read back exactly, and a FLOAT with at
//! most 6 significant digits; a column with a fixed scale (`FLOAT(7,3)`) with exactly that many
//! decimals. It uses plain notation unless the decimal point would be more than 15 digits to the
//! right of the first digit, or more than 14 zeros to the left of it. The binary protocol carries
//! the FLOAT's full 24 bits, so the API's value can hold more than the server's text; rendering
//! cuts it back to what the text protocol shows.

/// A column scale at or above this means "no fixed number of decimals" (MySQL uses 31, MariaDB
/// 39).
const NOT_FIXED_DEC: u8 = 31;
/// The farthest the decimal point may sit right of the digits for plain notation (DBL_DIG).
const MAX_DECPT_FOR_F_FORMAT: i32 = 15;

/// Which floating-point column type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// FLOAT: 6 significant digits.
    Single,
    /// DOUBLE: the shortest text that reads back exactly.
    Double,
}

/// The server's text for `value` in a column of this precision and scale.
pub fn float_text(value: f64, precision: Precision, scale: u8) -> String {
    if !value.is_finite() {
        return value.to_string(); // a server never sends these
    }
    if scale < NOT_FIXED_DEC {
        return format!("{value:.*}", usize::from(scale));
    }
    if value == 0.0 {
        return "0".into();
    }
    let scientific = match precision {
        Precision::Single => format!("{value:.5e}"),
        Precision::Double => format!("{value:e}"),
    };
    let (mantissa, exponent) = scientific.split_once('e').expect("{:e} always writes an exponent");
    let sign = if mantissa.starts_with('-') { "-" } else { "" };
    let mut digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    let decpt = exponent.parse::<i32>().expect("{:e} writes an integer exponent") + 1;
    let len = digits.len() as i32;
    if decpt > -MAX_DECPT_FOR_F_FORMAT && (decpt <= MAX_DECPT_FOR_F_FORMAT || len > decpt) {
        let body = if decpt <= 0 {
            format!("0.{}{digits}", "0".repeat(decpt.unsigned_abs() as usize))
        } else if decpt >= len {
            format!("{digits}{}", "0".repeat((decpt - len) as usize))
        } else {
            let (whole, fraction) = digits.split_at(decpt as usize);
            format!("{whole}.{fraction}")
        };
        format!("{sign}{body}")
    } else {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        format!("{sign}{first}{rest}e{}", decpt - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What MariaDB 10.11 printed for these values (`mariadb -B -N`), checked one by one.
    #[test]
    fn matches_what_the_server_prints() {
        let float = |v: f32| float_text(f64::from(v), Precision::Single, 39);
        assert_eq!(float(3.1415927), "3.14159");
        assert_eq!(float(123456789.0), "123457000");
        assert_eq!(float(0.00001), "0.00001");
        assert_eq!(float(1234567.0), "1234570");
        assert_eq!(float(-1.5e-10), "-0.00000000015");
        assert_eq!(float(3.4e38), "3.4e38");
        assert_eq!(float(16777217.0), "16777200");
        assert_eq!(float(1.17549435e-38), "1.17549e-38");
        let double = |v: f64| float_text(v, Precision::Double, 39);
        assert_eq!(double(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(double(1.1e300), "1.1e300");
        assert_eq!(double(1e15), "1e15");
        assert_eq!(double(1e16), "1e16");
        assert_eq!(double(123456789012345678.0), "1.2345678901234568e17");
        assert_eq!(double(0.0001), "0.0001");
        assert_eq!(double(2.5e-7), "0.00000025");
        assert_eq!(double(4.9e-324), "5e-324");
        assert_eq!(double(1e100), "1e100");
        assert_eq!(double(100000.0), "100000");
        assert_eq!(float_text(f64::from(3.142f32), Precision::Single, 3), "3.142");
        assert_eq!(float_text(0.0, Precision::Single, 3), "0.000");
    }
}
