//! Where sqlx meets the databases: a statement's values bound, the
//! statement run, a row's columns decoded. Implemented once for every sqlx
//! database that has the types the store needs, so the store's algorithm
//! (`super`) is written once against it and each backend file stays small.

use std::{future::Future, sync::Arc};

use sqlx::{
    AssertSqlSafe, ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row,
    Transaction, Type, database::HasStatementCache,
};
use uuid::Uuid;

use crate::{local_id::LocalId, store::IdKind};

/// A value bound to a statement.
#[derive(Debug, Clone)]
#[doc(hidden)]
pub enum Bind<'a> {
    Text(&'a str),
    /// Text the statement owns (a payload built for it).
    Owned(String),
    MaybeText(Option<&'a str>),
    Int(i64),
    Bool(bool),
    Uuid(Uuid),
}

/// One statement and its values, in order.
#[derive(Debug)]
#[doc(hidden)]
pub struct Statement<'a> {
    sql: Arc<str>,
    binds: Vec<Bind<'a>>,
    persistent: bool,
}

impl<'a> Statement<'a> {
    pub fn new(sql: impl Into<Arc<str>>) -> Self {
        Self {
            sql: sql.into(),
            binds: Vec::new(),
            persistent: true,
        }
    }

    /// Binds the next value.
    pub fn bind(mut self, value: Bind<'a>) -> Self {
        self.binds.push(value);
        self
    }

    /// Binds several values, in order.
    pub fn bind_all(mut self, values: impl IntoIterator<Item = Bind<'a>>) -> Self {
        self.binds.extend(values);
        self
    }

    /// Planned anew on each run rather than prepared once and cached: for a
    /// statement whose plan depends on how full a table is.
    pub fn planned_each_time(mut self) -> Self {
        self.persistent = false;
        self
    }
}

/// What the SQL store asks of a database. Sealed: implemented by the
/// bundled backends' databases only, and not nameable outside the crate.
pub trait Driver: Database + sealed::Sealed {
    /// Every row the statement returns.
    #[doc(hidden)]
    fn rows<'a>(
        pool: &'a Pool<Self>,
        statement: Statement<'a>,
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send + 'a;

    /// Runs the statement; returns how many rows it changed.
    #[doc(hidden)]
    fn execute<'a>(
        pool: &'a Pool<Self>,
        statement: Statement<'a>,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'a;

    /// Runs the statements in one transaction; returns how many rows each changed.
    #[doc(hidden)]
    fn execute_together<'a>(
        pool: &'a Pool<Self>,
        statements: Vec<Statement<'a>>,
    ) -> impl Future<Output = Result<Vec<u64>, sqlx::Error>> + Send + 'a;

    /// A transaction, for statements that depend on each other's rows.
    #[doc(hidden)]
    fn begin(
        pool: &Pool<Self>,
    ) -> impl Future<Output = Result<Transaction<'static, Self>, sqlx::Error>> + Send + '_;

    /// Every row the statement returns, run in `transaction`.
    #[doc(hidden)]
    fn rows_in<'a>(
        transaction: &'a mut Transaction<'static, Self>,
        statement: Statement<'a>,
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send + 'a;

    /// Runs the statement in `transaction`, its rows unread.
    #[doc(hidden)]
    fn execute_in<'a>(
        transaction: &'a mut Transaction<'static, Self>,
        statement: Statement<'a>,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a;

    /// Runs a script of several statements (a migration).
    #[doc(hidden)]
    fn run_script<'a>(
        pool: &'a Pool<Self>,
        script: &'a str,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a;

    #[doc(hidden)]
    fn text(row: &Self::Row, column: usize) -> Result<String, sqlx::Error>;

    #[doc(hidden)]
    fn flag(row: &Self::Row, column: usize) -> Result<bool, sqlx::Error>;

    #[doc(hidden)]
    fn int(row: &Self::Row, column: usize) -> Result<i64, sqlx::Error>;

    #[doc(hidden)]
    fn maybe_int(row: &Self::Row, column: usize) -> Result<Option<i64>, sqlx::Error>;

    /// A local id column of the given kind; `None` for SQL `NULL`.
    #[doc(hidden)]
    fn id(row: &Self::Row, column: usize, kind: IdKind) -> Result<Option<LocalId>, sqlx::Error>;
}

mod sealed {
    pub trait Sealed {}

    #[cfg(feature = "postgres")]
    impl Sealed for sqlx::Postgres {}

    #[cfg(feature = "sqlite")]
    impl Sealed for sqlx::Sqlite {}
}

impl<DB> Driver for DB
where
    DB: Database + sealed::Sealed,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB>,
    for<'q> bool: Encode<'q, DB>,
    for<'q> Uuid: Encode<'q, DB>,
    for<'r> String: Decode<'r, DB>,
    for<'r> bool: Decode<'r, DB>,
    for<'r> i64: Decode<'r, DB>,
    for<'r> Uuid: Decode<'r, DB>,
    String: Type<DB>,
    bool: Type<DB>,
    i64: Type<DB>,
    Uuid: Type<DB>,
    usize: ColumnIndex<DB::Row>,
    DB::QueryResult: RowsAffected,
    DB: HasStatementCache,
{
    async fn rows<'a>(
        pool: &'a Pool<Self>,
        statement: Statement<'a>,
    ) -> Result<Vec<Self::Row>, sqlx::Error> {
        prepare::<DB>(statement).fetch_all(pool).await
    }

    async fn execute<'a>(
        pool: &'a Pool<Self>,
        statement: Statement<'a>,
    ) -> Result<u64, sqlx::Error> {
        let done = prepare::<DB>(statement).execute(pool).await?;
        Ok(rows_affected::<DB>(&done))
    }

    async fn execute_together<'a>(
        pool: &'a Pool<Self>,
        statements: Vec<Statement<'a>>,
    ) -> Result<Vec<u64>, sqlx::Error> {
        let mut transaction = pool.begin().await?;
        let mut changed = Vec::with_capacity(statements.len());
        for statement in statements {
            let done = prepare::<DB>(statement).execute(&mut *transaction).await?;
            changed.push(rows_affected::<DB>(&done));
        }
        transaction.commit().await?;
        Ok(changed)
    }

    async fn begin(pool: &Pool<Self>) -> Result<Transaction<'static, Self>, sqlx::Error> {
        pool.begin().await
    }

    async fn rows_in<'a>(
        transaction: &'a mut Transaction<'static, Self>,
        statement: Statement<'a>,
    ) -> Result<Vec<Self::Row>, sqlx::Error> {
        prepare::<DB>(statement).fetch_all(&mut **transaction).await
    }

    async fn execute_in<'a>(
        transaction: &'a mut Transaction<'static, Self>,
        statement: Statement<'a>,
    ) -> Result<(), sqlx::Error> {
        prepare::<DB>(statement).execute(&mut **transaction).await?;
        Ok(())
    }

    async fn run_script(pool: &Pool<Self>, script: &str) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(AssertSqlSafe(script)).execute(pool).await?;
        Ok(())
    }

    fn text(row: &Self::Row, column: usize) -> Result<String, sqlx::Error> {
        row.try_get(column)
    }

    fn flag(row: &Self::Row, column: usize) -> Result<bool, sqlx::Error> {
        row.try_get(column)
    }

    fn int(row: &Self::Row, column: usize) -> Result<i64, sqlx::Error> {
        row.try_get(column)
    }

    fn maybe_int(row: &Self::Row, column: usize) -> Result<Option<i64>, sqlx::Error> {
        row.try_get(column)
    }

    fn id(row: &Self::Row, column: usize, kind: IdKind) -> Result<Option<LocalId>, sqlx::Error> {
        Ok(match kind {
            IdKind::BigInt => row.try_get::<Option<i64>, _>(column)?.map(LocalId::Int),
            IdKind::Uuid => row.try_get::<Option<Uuid>, _>(column)?.map(LocalId::Uuid),
        })
    }
}

/// The sqlx query for a statement, its values bound.
fn prepare<DB>(statement: Statement<'_>) -> sqlx::query::Query<'_, DB, DB::Arguments>
where
    DB: Database + HasStatementCache,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
{
    let mut query = sqlx::query(AssertSqlSafe(statement.sql)).persistent(statement.persistent);
    for value in statement.binds {
        query = match value {
            Bind::Text(text) => query.bind(text),
            Bind::Owned(text) => query.bind(text),
            Bind::MaybeText(text) => query.bind(text),
            Bind::Int(int) => query.bind(int),
            Bind::Bool(flag) => query.bind(flag),
            Bind::Uuid(uuid) => query.bind(uuid),
        };
    }
    query
}

/// Rows a statement changed, from the database's own result type.
fn rows_affected<DB: Database>(done: &DB::QueryResult) -> u64
where
    DB::QueryResult: RowsAffected,
{
    done.rows_affected()
}

/// The rows a statement changed: every sqlx result type reports it, but
/// under its own inherent method.
pub trait RowsAffected {
    #[doc(hidden)]
    fn rows_affected(&self) -> u64;
}

#[cfg(feature = "postgres")]
impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::postgres::PgQueryResult::rows_affected(self)
    }
}

#[cfg(feature = "sqlite")]
impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::sqlite::SqliteQueryResult::rows_affected(self)
    }
}

/// Whether the database refused a statement for a foreign key: a row it
/// references is gone.
pub(super) fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(error)
        if error.kind() == sqlx::error::ErrorKind::ForeignKeyViolation)
}
