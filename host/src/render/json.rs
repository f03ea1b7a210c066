//! The JSON output format:
//! `{"results":[{"columns":[{"name":..,"type":..}],"rows":[[..]],"affected_rows":N,"last_insert_id":N,"warnings":N}]}`.
//!
//! Integers are exact JSON integers over the full i64/u64 ranges; FLOAT and DOUBLE are JSON
//! numbers with the digits the server's text protocol writes (so FLOAT has at most 6 significant
//! digits, whichever protocol carried it); DECIMAL is a string of the server's digits;
//! temporal values are strings as the server writes them; binary values are `{"base64":..}`.

use super::float::{Precision, float_text};
use super::{date_text, datetime_text, time_text};
use crate::bindings::{Column, ResultSet, Value};
use base64::Engine as _;
use serde::ser::{Serialize, SerializeMap, Serializer};

/// A result's columns as the document lists them.
pub fn columns_json(columns: &[Column]) -> String {
    serde_json::to_string(&Columns(columns)).expect("JSON serialization of owned data cannot fail")
}

/// One row as the document lists it.
pub fn row_json(row: &[Value], columns: &[Column]) -> String {
    serde_json::to_string(&Row(row, columns)).expect("JSON serialization of owned data cannot fail")
}

/// Serializes result sets as the CLI's JSON document.
pub fn to_json(results: &[ResultSet]) -> String {
    let doc = Document { results };
    serde_json::to_string(&doc).expect("JSON serialization of owned data cannot fail")
}

#[derive(serde::Serialize)]
struct Document<'a> {
    #[serde(serialize_with = "sets")]
    results: &'a [ResultSet],
}

fn sets<S: Serializer>(sets: &&[ResultSet], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(sets.iter().map(JsonSet))
}

struct JsonSet<'a>(&'a ResultSet);

impl Serialize for JsonSet<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let set = self.0;
        let mut map = s.serialize_map(Some(5))?;
        map.serialize_entry("columns", &Columns(&set.columns))?;
        map.serialize_entry("rows", &Rows(&set.rows, &set.columns))?;
        map.serialize_entry("affected_rows", &set.affected_rows)?;
        map.serialize_entry("last_insert_id", &set.last_insert_id)?;
        map.serialize_entry("warnings", &set.warnings)?;
        map.end()
    }
}

struct Columns<'a>(&'a [Column]);

impl Serialize for Columns<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|c| ColumnJson { name: &c.name, r#type: &c.type_name }))
    }
}

#[derive(serde::Serialize)]
struct ColumnJson<'a> {
    name: &'a str,
    r#type: &'a str,
}

struct Rows<'a>(&'a [Vec<Value>], &'a [Column]);

impl Serialize for Rows<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|row| Row(row, self.1)))
    }
}

struct Row<'a>(&'a [Value], &'a [Column]);

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().zip(self.1).map(|(value, column)| JsonValue { value, column }))
    }
}

/// One value in the JSON encoding, with its column (for FLOAT and DOUBLE digits).
pub struct JsonValue<'a> {
    pub value: &'a Value,
    pub column: &'a Column,
}

impl Serialize for JsonValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The server's text, read back as a number: the digits the text protocol writes.
        let number = |v: f64, p: Precision| float_text(v, p, self.column.decimals).parse::<f64>().unwrap_or(v);
        match self.value {
            Value::Null => s.serialize_unit(),
            Value::Int(v) => s.serialize_i64(*v),
            Value::Uint(v) => s.serialize_u64(*v),
            Value::Float(v) => s.serialize_f64(number(f64::from(*v), Precision::Single)),
            Value::Double(v) => s.serialize_f64(number(*v, Precision::Double)),
            Value::Decimal(v) | Value::Text(v) => s.serialize_str(v),
            Value::Bytes(bytes) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("base64", &base64::engine::general_purpose::STANDARD.encode(bytes))?;
                map.end()
            }
            Value::Date(d) => s.serialize_str(&date_text(d)),
            Value::Time(t) => s.serialize_str(&time_text(t)),
            Value::Datetime(dt) => s.serialize_str(&datetime_text(dt)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(columns: &[&str], rows: Vec<Vec<Value>>) -> ResultSet {
        ResultSet {
            columns: columns
                .iter()
                .map(|n| Column {
                    name: n.to_string(),
                    type_name: "X".into(),
                    type_code: 0,
                    flags: 0,
                    charset: 63,
                    decimals: 39,
                    length: 0,
                })
                .collect(),
            rows,
            affected_rows: 0,
            last_insert_id: 0,
            warnings: 0,
            info: String::new(),
        }
    }

    /// The document's shape and the value encodings, on the extremes.
    #[test]
    fn document_shape_and_value_encodings() {
        let row = vec![
            Value::Int(i64::MIN),
            Value::Uint(u64::MAX),
            Value::Float(0.1),
            Value::Double(1.5),
            Value::Decimal("1.50".into()),
            Value::Bytes(vec![0x00, 0xff]),
            Value::Null,
        ];
        let json = to_json(&[set(&["a", "b", "c", "d", "e", "f", "g"], vec![row])]);
        assert_eq!(
            json,
            r#"{"results":[{"columns":[{"name":"a","type":"X"},{"name":"b","type":"X"},{"name":"c","type":"X"},{"name":"d","type":"X"},{"name":"e","type":"X"},{"name":"f","type":"X"},{"name":"g","type":"X"}],"rows":[[-9223372036854775808,18446744073709551615,0.1,1.5,"1.50",{"base64":"AP8="},null]],"affected_rows":0,"last_insert_id":0,"warnings":0}]}"#
        );
    }
}
