//! Multi-row INSERT statements of a few fixed sizes, so that bulk ingest sends few
//! statements and every one of them stays in the connection's prepared-statement cache.
//!
//! A batch of `n` rows is sent as full chunks of the largest size, then the remainder as
//! powers of two (at most one statement of each), so a table needs at most a dozen
//! distinct statements however many rows arrive.

/// SQLite's default limit on bound parameters in one statement.
pub(super) const MAX_PARAMETERS: usize = 32_766;

/// The INSERT statements of one table, largest first.
pub(super) struct BatchInsert {
    /// `(rows, sql)`: the first entry is the full chunk, the rest descending powers of two.
    statements: Vec<(usize, String)>,
}

impl BatchInsert {
    /// Statements `head VALUES (?, ...), ...` for rows of `columns` parameters, with full
    /// chunks of `chunk_rows` rows (clamped to the parameter limit).
    pub(super) fn new(head: &str, columns: usize, chunk_rows: usize) -> Self {
        let chunk_rows = chunk_rows.clamp(1, MAX_PARAMETERS / columns);
        let mut sizes = vec![chunk_rows];
        let mut power = chunk_rows.next_power_of_two();
        while power >= 1 {
            if power < chunk_rows {
                sizes.push(power);
            }
            power /= 2;
        }
        let row = format!("({})", vec!["?"; columns].join(", "));
        let statements = sizes
            .into_iter()
            .map(|rows| {
                let mut sql = String::with_capacity(head.len() + 8 + rows * (row.len() + 2));
                sql.push_str(head);
                sql.push_str(" VALUES ");
                for index in 0..rows {
                    if index > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&row);
                }
                (rows, sql)
            })
            .collect();
        BatchInsert { statements }
    }

    /// The rows in one full chunk.
    #[cfg(test)]
    pub(super) fn chunk_rows(&self) -> usize {
        self.statements[0].0
    }

    /// The statements that insert `rows` rows, in order, with the rows each one takes.
    pub(super) fn plan(&self, rows: usize) -> Vec<(usize, &str)> {
        let (chunk_rows, chunk_sql) = &self.statements[0];
        let mut plan = vec![(*chunk_rows, chunk_sql.as_str()); rows / chunk_rows];
        // The remainder is below the chunk size, so below twice the largest power of two
        // listed: one statement of each set bit covers it.
        let mut left = rows % chunk_rows;
        for (size, sql) in &self.statements[1..] {
            if left >= *size {
                plan.push((*size, sql.as_str()));
                left -= size;
            }
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(insert: &BatchInsert, rows: usize) -> Vec<usize> {
        insert
            .plan(rows)
            .into_iter()
            .map(|(size, _)| size)
            .collect()
    }

    #[test]
    fn a_batch_is_full_chunks_then_descending_powers_of_two() {
        let insert = BatchInsert::new("INSERT INTO t (a, b)", 2, 1000);
        let cases: &[(usize, &[usize])] = &[
            (0, &[]),
            (1, &[1]),
            (7, &[4, 2, 1]),
            (1000, &[1000]),
            (3001, &[1000, 1000, 1000, 1]),
            (2999, &[1000, 1000, 512, 256, 128, 64, 32, 4, 2, 1]),
        ];
        for &(rows, expected) in cases {
            assert_eq!(sizes(&insert, rows), expected, "{rows} rows");
        }
    }

    #[test]
    fn chunks_never_exceed_the_parameter_limit() {
        let insert = BatchInsert::new("INSERT INTO t (a)", 17, 1_000_000);
        assert_eq!(insert.chunk_rows(), MAX_PARAMETERS / 17);
        let (rows, sql) = insert.plan(insert.chunk_rows())[0];
        assert_eq!(sql.matches('?').count(), rows * 17);
    }
}
