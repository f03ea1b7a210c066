//! Result sets printed as their rows arrive, in bounded memory, in both formats: what
//! `leashed query` does, as `mysql --quick` does.
//!
//! - Table: the first [`LOOKAHEAD_ROWS`] rows are held back to size the columns. A result that
//!   ends within them prints exactly as [`super::table::to_table`] prints it. A longer one is
//!   sized from those rows and the columns' metadata (display width, capped at
//!   [`MAX_METADATA_WIDTH`]), and later rows print as they come; a wider value overflows its
//!   column, as in `mysql --quick`.
//! - JSON: the same document as [`super::json::to_json`], written piece by piece.

use super::json::{columns_json, row_json};
use super::table::{Layout, cell, render_set};
use crate::bindings::{Column, ResultSet, Value};
use std::io::{self, Write};

/// Rows held back to size a table's columns.
pub const LOOKAHEAD_ROWS: usize = 1_000;

/// The widest a column's metadata may make it.
pub const MAX_METADATA_WIDTH: usize = 64;

/// The output formats, as a printer of result sets that arrive in pieces.
pub trait SetPrinter {
    /// A statement's result begins, with these columns (none for a statement without rows).
    fn begin_set(&mut self, columns: &[Column]) -> io::Result<()>;
    /// More of its rows.
    fn rows(&mut self, rows: &[Vec<Value>]) -> io::Result<()>;
    /// Its end, with its counters (`None`: it failed midway).
    fn end_set(&mut self, outcome: Option<&ResultSet>) -> io::Result<()>;
    /// After the last statement (also after a failed one).
    fn finish(&mut self) -> io::Result<()>;
}

/// The table format.
pub struct TableStream<W: Write> {
    out: W,
    columns: Vec<Column>,
    held: Vec<Vec<(String, bool)>>,
    /// Set once the held rows overflowed and the header went out.
    layout: Option<Layout>,
    printed: u64,
}

impl<W: Write> TableStream<W> {
    pub fn new(out: W) -> Self {
        TableStream { out, columns: Vec::new(), held: Vec::new(), layout: None, printed: 0 }
    }

    fn print_lines(&mut self, cells: &[Vec<(String, bool)>]) -> io::Result<()> {
        let layout = self.layout.as_ref().expect("sized");
        let mut text = String::new();
        for row in cells {
            layout.line(&mut text, &mut row.iter().map(|(t, right)| (t.as_str(), *right)));
        }
        self.printed += cells.len() as u64;
        self.out.write_all(text.as_bytes())
    }
}

impl<W: Write> SetPrinter for TableStream<W> {
    fn begin_set(&mut self, columns: &[Column]) -> io::Result<()> {
        (self.columns, self.held, self.layout, self.printed) = (columns.to_vec(), Vec::new(), None, 0);
        Ok(())
    }

    fn rows(&mut self, rows: &[Vec<Value>]) -> io::Result<()> {
        let cells: Vec<Vec<(String, bool)>> =
            rows.iter().map(|row| row.iter().zip(&self.columns).map(|(v, c)| cell(v, c)).collect()).collect();
        if self.layout.is_some() {
            return self.print_lines(&cells);
        }
        self.held.extend(cells);
        if self.held.len() <= LOOKAHEAD_ROWS {
            return Ok(());
        }
        let layout = Layout::fitting(&self.columns, &self.held, metadata_width);
        let mut header = String::new();
        layout.header(&mut header, &self.columns);
        self.out.write_all(header.as_bytes())?;
        self.layout = Some(layout);
        let held = std::mem::take(&mut self.held);
        self.print_lines(&held)
    }

    fn end_set(&mut self, outcome: Option<&ResultSet>) -> io::Result<()> {
        let warnings = outcome.map_or(0, |o| o.warnings);
        let mut text = String::new();
        match &self.layout {
            Some(layout) => layout.footer(&mut text, self.printed, warnings),
            None => {
                // Everything fits in the held rows: exactly the buffered table.
                let Some(outcome) = outcome else { return Ok(()) };
                let held = std::mem::take(&mut self.held);
                let set = ResultSet { columns: self.columns.clone(), rows: Vec::new(), ..outcome.clone() };
                if set.columns.is_empty() || held.is_empty() {
                    render_set(&mut text, &set);
                } else {
                    let layout = Layout::fitting(&set.columns, &held, |_| 0);
                    layout.header(&mut text, &set.columns);
                    for row in &held {
                        layout.line(&mut text, &mut row.iter().map(|(t, right)| (t.as_str(), *right)));
                    }
                    layout.footer(&mut text, held.len() as u64, warnings);
                }
            }
        }
        self.out.write_all(text.as_bytes())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// How wide a column's metadata says its values are, in characters (capped). Numbers and
/// temporal values have their display width; strings their length in bytes over the bytes a
/// character may take; binary strings print as `0x` and two hex digits a byte.
fn metadata_width(column: &Column) -> usize {
    // VARCHAR, the BLOB types, VAR_STRING and STRING.
    let string_type = matches!(column.type_code, 15 | 249..=254);
    let length = column.length as usize;
    let chars = match column.charset {
        _ if !string_type => length,
        63 => length * 2 + 2,
        33 | 83 | 192..=223 => length / 3,             // utf8mb3
        45 | 46 | 224..=247 | 255..=309 => length / 4, // utf8mb4
        _ => length,
    };
    chars.min(MAX_METADATA_WIDTH)
}

/// The JSON format.
pub struct JsonStream<W: Write> {
    out: W,
    sets: usize,
    rows_in_set: usize,
    columns: Vec<Column>,
}

impl<W: Write> JsonStream<W> {
    /// Starts the document.
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(br#"{"results":["#)?;
        Ok(JsonStream { out, sets: 0, rows_in_set: 0, columns: Vec::new() })
    }
}

impl<W: Write> SetPrinter for JsonStream<W> {
    fn begin_set(&mut self, columns: &[Column]) -> io::Result<()> {
        if self.sets > 0 {
            self.out.write_all(b",")?;
        }
        self.sets += 1;
        (self.columns, self.rows_in_set) = (columns.to_vec(), 0);
        write!(self.out, r#"{{"columns":{},"rows":["#, columns_json(columns))
    }

    fn rows(&mut self, rows: &[Vec<Value>]) -> io::Result<()> {
        let mut text = String::new();
        for row in rows {
            if self.rows_in_set > 0 {
                text.push(',');
            }
            self.rows_in_set += 1;
            text.push_str(&row_json(row, &self.columns));
        }
        self.out.write_all(text.as_bytes())
    }

    fn end_set(&mut self, outcome: Option<&ResultSet>) -> io::Result<()> {
        let (affected, id, warnings) = outcome.map_or((0, 0, 0), |o| (o.affected_rows, o.last_insert_id, o.warnings));
        write!(self.out, r#"],"affected_rows":{affected},"last_insert_id":{id},"warnings":{warnings}}}"#)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.out.write_all(b"]}\n")?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{json::to_json, table::to_table};

    fn column(name: &str, length: u32) -> Column {
        Column {
            name: name.into(),
            type_name: "BIGINT".into(),
            type_code: 8,
            flags: 0,
            charset: 63,
            decimals: 0,
            length,
        }
    }

    fn set(rows: u64) -> ResultSet {
        ResultSet {
            columns: vec![column("n", 20), column("s", 10)],
            rows: (1..=rows).map(|n| vec![Value::Int(n as i64), Value::Text(format!("v{n}"))]).collect(),
            affected_rows: 0,
            last_insert_id: 0,
            warnings: 0,
            info: String::new(),
        }
    }

    fn streamed(printer: &mut dyn SetPrinter, sets: &[ResultSet]) {
        for s in sets {
            printer.begin_set(&s.columns).unwrap();
            for batch in s.rows.chunks(7) {
                printer.rows(batch).unwrap();
            }
            printer.end_set(Some(&ResultSet { rows: Vec::new(), ..s.clone() })).unwrap();
        }
        printer.finish().unwrap();
    }

    /// Within the look-ahead, both formats print exactly what the buffered ones print.
    #[test]
    fn short_results_print_as_the_buffered_formats() {
        let ok = ResultSet { columns: vec![], rows: vec![], affected_rows: 2, ..set(0) };
        let sets = [set(3), set(0), ok];
        let mut table = Vec::new();
        streamed(&mut TableStream::new(&mut table), &sets);
        assert_eq!(String::from_utf8(table).unwrap(), to_table(&sets));
        let mut json = Vec::new();
        streamed(&mut JsonStream::new(&mut json).unwrap(), &sets);
        assert_eq!(String::from_utf8(json).unwrap(), format!("{}\n", to_json(&sets)));
    }

    /// Past the look-ahead, every row still prints, in columns sized by the held rows and the
    /// metadata; the JSON document stays the buffered one.
    #[test]
    fn long_results_stream_every_row() {
        let long = set(LOOKAHEAD_ROWS as u64 + 500);
        let mut table = Vec::new();
        streamed(&mut TableStream::new(&mut table), std::slice::from_ref(&long));
        let table = String::from_utf8(table).unwrap();
        assert!(table.starts_with("+----------------------+------------+\n| n "), "{}", &table[..200]);
        assert_eq!(table.lines().filter(|l| l.starts_with("| ")).count(), 1 + 1_500, "header and every row");
        assert!(table.ends_with("1500 rows in set\n"));
        let mut json = Vec::new();
        streamed(&mut JsonStream::new(&mut json).unwrap(), std::slice::from_ref(&long));
        assert_eq!(String::from_utf8(json).unwrap(), format!("{}\n", to_json(&[long])));
    }
}
