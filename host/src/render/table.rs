//! The table output format, laid out like the mysql command-line client's:
//! boxed columns, numbers right-aligned, NULL as `NULL`, binary values as `0x…` hex, then a
//! line such as `2 rows in set` or `Query OK, 1 row affected`.

use super::value_text;
use crate::bindings::{Column, ResultSet, Value};
use std::fmt::Write;

/// Renders every result set, one after the other.
pub fn to_table(results: &[ResultSet]) -> String {
    let mut out = String::new();
    for set in results {
        render_set(&mut out, set);
    }
    out
}

pub(crate) fn render_set(out: &mut String, set: &ResultSet) {
    if set.columns.is_empty() {
        let rows = plural(set.affected_rows, "row");
        let _ = write!(out, "Query OK, {rows} affected");
        if set.warnings > 0 {
            let _ = write!(out, ", {}", plural(set.warnings.into(), "warning"));
        }
        out.push('\n');
        if !set.info.is_empty() {
            let _ = writeln!(out, "{}", set.info);
        }
        return;
    }
    if set.rows.is_empty() {
        out.push_str("Empty set\n");
        return;
    }
    let cells: Vec<Vec<(String, bool)>> =
        set.rows.iter().map(|row| row.iter().zip(&set.columns).map(|(v, c)| cell(v, c)).collect()).collect();
    let layout = Layout::fitting(&set.columns, &cells, |_| 0);
    layout.header(out, &set.columns);
    for row in &cells {
        layout.line(out, &mut row.iter().map(|(t, right)| (t.as_str(), *right)));
    }
    layout.footer(out, set.rows.len() as u64, set.warnings);
}

/// Column widths, and the lines drawn with them.
pub(crate) struct Layout {
    widths: Vec<usize>,
}

impl Layout {
    /// Wide enough for every column's name, every cell, and `at_least(column)`.
    pub(crate) fn fitting(
        columns: &[Column],
        cells: &[Vec<(String, bool)>],
        at_least: impl Fn(&Column) -> usize,
    ) -> Layout {
        let mut widths: Vec<usize> = columns.iter().map(|c| c.name.chars().count().max(at_least(c))).collect();
        for row in cells {
            for (width, (text, _)) in widths.iter_mut().zip(row) {
                *width = (*width).max(text.chars().count());
            }
        }
        Layout { widths }
    }

    fn rule(&self) -> String {
        self.widths.iter().fold(String::from("+"), |mut s, w| {
            s.push_str(&"-".repeat(w + 2));
            s.push('+');
            s
        })
    }

    /// The top rule, the column names, and the rule under them.
    pub(crate) fn header(&self, out: &mut String, columns: &[Column]) {
        let _ = writeln!(out, "{}", self.rule());
        self.line(out, &mut columns.iter().map(|c| (c.name.as_str(), false)));
        let _ = writeln!(out, "{}", self.rule());
    }

    /// One row; a text wider than its column overflows it, as in `mysql --quick`.
    pub(crate) fn line(&self, out: &mut String, texts: &mut dyn Iterator<Item = (&str, bool)>) {
        out.push('|');
        for ((text, right), width) in texts.zip(&self.widths) {
            let pad = width.saturating_sub(text.chars().count());
            if right {
                let _ = write!(out, " {}{text} |", " ".repeat(pad));
            } else {
                let _ = write!(out, " {text}{} |", " ".repeat(pad));
            }
        }
        out.push('\n');
    }

    /// The bottom rule and `N rows in set`.
    pub(crate) fn footer(&self, out: &mut String, rows: u64, warnings: u16) {
        let _ = writeln!(out, "{}", self.rule());
        let _ = write!(out, "{} in set", plural(rows, "row"));
        if warnings > 0 {
            let _ = write!(out, ", {}", plural(warnings.into(), "warning"));
        }
        out.push('\n');
    }
}

/// The cell's text and whether it is right-aligned (numbers are).
pub(crate) fn cell(value: &Value, column: &Column) -> (String, bool) {
    let right =
        matches!(value, Value::Int(_) | Value::Uint(_) | Value::Float(_) | Value::Double(_) | Value::Decimal(_));
    (value_text(value, column).unwrap_or_else(|| "NULL".into()), right)
}

fn plural(n: u64, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::Column;

    fn column(name: &str) -> Column {
        Column {
            name: name.into(),
            type_name: "X".into(),
            type_code: 0,
            flags: 0,
            charset: 63,
            decimals: 39,
            length: 0,
        }
    }

    /// Boxed like the mysql client: numbers right, text left, NULL spelled out, bytes as hex.
    #[test]
    fn rows_render_as_a_boxed_table() {
        let set = ResultSet {
            columns: vec![column("id"), column("name"), column("raw")],
            rows: vec![
                vec![Value::Int(1), Value::Text("alice".into()), Value::Bytes(vec![0, 255])],
                vec![Value::Int(10), Value::Null, Value::Null],
            ],
            affected_rows: 0,
            last_insert_id: 0,
            warnings: 0,
            info: String::new(),
        };
        let expected = "\
+----+-------+--------+
| id | name  | raw    |
+----+-------+--------+
|  1 | alice | 0x00FF |
| 10 | NULL  | NULL   |
+----+-------+--------+
2 rows in set
";
        assert_eq!(to_table(&[set]), expected);
    }

    /// Statements without rows print their counters.
    #[test]
    fn ok_results_print_counters() {
        let set = ResultSet {
            columns: vec![],
            rows: vec![],
            affected_rows: 1,
            last_insert_id: 0,
            warnings: 0,
            info: "Rows matched: 1  Changed: 1  Warnings: 0".into(),
        };
        assert_eq!(to_table(&[set]), "Query OK, 1 row affected\nRows matched: 1  Changed: 1  Warnings: 0\n");
    }
}
