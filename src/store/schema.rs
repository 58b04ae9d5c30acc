//! [`SchemaError`]: a table, column or unique constraint the store needs
//! that the database lacks, found when the app starts.

/// The database lacks a table, a column or a unique constraint the store
/// reads or writes. Its text names the table, the column and the fix.
///
/// Found by [`UserStore::check_schema`](super::UserStore::check_schema) (run
/// by `Setup::start` and by every readiness check),
/// so a schema the store cannot use stops the app from starting instead of
/// failing its first requests.
///
/// Its `Debug` is the same sentence, so that an app that returns it from
/// `main` prints what to fix, not the struct.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SchemaError {
    table: String,
    column: Option<String>,
    message: String,
}

impl std::fmt::Debug for SchemaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl SchemaError {
    /// What is missing, in `table` (and `column`, if it is one), and how to fix it.
    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    pub(crate) fn new(table: &str, column: Option<&str>, message: String) -> Self {
        Self {
            table: table.to_owned(),
            column: column.map(str::to_owned),
            message,
        }
    }

    /// The table concerned, as named in the mapping (`schema.name` when qualified).
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The missing column, or the first column of a missing unique
    /// constraint; `None` when the whole table is missing.
    pub fn column(&self) -> Option<&str> {
        self.column.as_deref()
    }
}

#[cfg(all(test, any(feature = "postgres", feature = "sqlite")))]
mod tests {
    use super::*;

    #[test]
    fn returned_from_main_it_prints_the_fix() {
        let error = SchemaError::new(
            "accounts",
            Some("banned"),
            "table accounts has no column banned: add it".to_owned(),
        );
        assert_eq!(
            format!("{error:?}"),
            "table accounts has no column banned: add it"
        );
        assert_eq!(format!("{error:?}"), error.to_string());
    }
}
