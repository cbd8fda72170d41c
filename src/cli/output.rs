//! Printing rows as an aligned table, JSON or CSV. Commands build [`Rows`]; this module
//! owns every output format so they stay consistent across commands.

use clap::ValueEnum;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// A result set: named columns and rows of JSON values (null for missing).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Value>>,
}

impl Rows {
    pub fn new(columns: Vec<&'static str>) -> Self {
        Rows {
            columns,
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<Value>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Table => self.table(),
            Format::Json => self.json(),
            Format::Csv => self.csv(),
        }
    }

    fn table(&self) -> String {
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|row| row.iter().map(table_cell).collect())
            .collect();
        let mut widths: Vec<usize> = self.columns.iter().map(|c| c.len()).collect();
        for row in &cells {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.columns.iter().map(|c| c.to_string()).collect();
        push_table_line(&mut out, &header, &widths);
        for row in &cells {
            push_table_line(&mut out, row, &widths);
        }
        if self.rows.is_empty() {
            out.push_str("(no rows)\n");
        }
        out
    }

    fn json(&self) -> String {
        let objects: Vec<Value> = self
            .rows
            .iter()
            .map(|row| {
                let object: Map<String, Value> = self
                    .columns
                    .iter()
                    .zip(row)
                    .map(|(column, value)| (column.to_string(), value.clone()))
                    .collect();
                Value::Object(object)
            })
            .collect();
        let mut out = serde_json::to_string_pretty(&objects).unwrap_or_else(|_| "[]".to_string());
        out.push('\n');
        out
    }

    fn csv(&self) -> String {
        let mut out = String::new();
        let header: Vec<String> = self.columns.iter().map(|c| csv_field(c)).collect();
        out.push_str(&header.join(","));
        out.push('\n');
        for row in &self.rows {
            let fields: Vec<String> = row
                .iter()
                .map(|value| match value {
                    Value::Null => String::new(),
                    Value::String(text) => csv_field(text),
                    other => csv_field(&other.to_string()),
                })
                .collect();
            out.push_str(&fields.join(","));
            out.push('\n');
        }
        out
    }
}

fn push_table_line(out: &mut String, cells: &[String], widths: &[usize]) {
    let line: Vec<String> = cells
        .iter()
        .zip(widths)
        .map(|(cell, width)| format!("{cell:<width$}"))
        .collect();
    out.push_str(line.join("  ").trim_end());
    out.push('\n');
}

fn table_cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_string(),
        Value::String(text) => text.clone(),
        Value::Number(number) => match number.as_f64() {
            Some(float) if number.is_f64() => format_number(float),
            _ => number.to_string(),
        },
        other => other.to_string(),
    }
}

/// Up to three decimals, without trailing zeros: 0.95 → "0.95", 100.0 → "100".
pub fn format_number(value: f64) -> String {
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sample() -> Rows {
        let mut rows = Rows::new(vec!["target", "workers", "utilization", "note"]);
        rows.push(vec![json!("prod"), json!(3), json!(0.91234), json!(null)]);
        rows.push(vec![
            json!("dev, eu"),
            json!(12),
            json!(1.0),
            json!("said \"hi\""),
        ]);
        rows
    }

    #[test]
    fn tables_align_columns_and_show_missing_values_as_dashes() {
        assert_eq!(
            sample().render(Format::Table),
            "target   workers  utilization  note\n\
             prod     3        0.912        -\n\
             dev, eu  12       1            said \"hi\"\n"
        );
        assert_eq!(Rows::new(vec!["a"]).render(Format::Table), "a\n(no rows)\n");
    }

    #[test]
    fn csv_quotes_what_needs_quoting_and_leaves_missing_values_empty() {
        assert_eq!(
            sample().render(Format::Csv),
            "target,workers,utilization,note\n\
             prod,3,0.91234,\n\
             \"dev, eu\",12,1.0,\"said \"\"hi\"\"\"\n"
        );
    }

    #[test]
    fn json_keeps_column_order_and_nulls() {
        let parsed: Value = serde_json::from_str(&sample().render(Format::Json)).expect("json");
        assert_eq!(
            parsed[0],
            json!({"target": "prod", "workers": 3, "utilization": 0.91234, "note": null})
        );
        let keys: Vec<&String> = parsed[0].as_object().expect("object").keys().collect();
        assert_eq!(keys, vec!["target", "workers", "utilization", "note"]);
    }
}
