//! What the store needs of the database — each table it reads or writes,
//! the columns it names and the unique constraints its `ON CONFLICT`
//! targets — and the check of it against the database's catalog, which
//! answers with the first thing missing and its fix.

use std::collections::{BTreeSet, HashMap, HashSet};

use sqlx::Pool;

use super::{
    Dialect,
    organization_columns::Tables,
    organization_queries::{MEMBERSHIP_TOMBSTONES, ORGANIZATION_TOMBSTONES},
    queries::ENDED_SESSIONS,
};
use crate::store::{MembershipTable, OrganizationTable, SchemaError, StoreError, UserTable};

/// A table as the catalog is asked about it.
#[doc(hidden)]
pub struct TableName {
    /// Double-quoted, as statements name it (`"app"."accounts"`): what
    /// PostgreSQL's catalog is asked with.
    #[cfg(feature = "postgres")]
    pub(super) quoted: String,
    /// The schema (or attached database) it is qualified with, if any.
    pub(super) schema: Option<String>,
    /// The table's own name, unquoted.
    pub(super) table: String,
}

impl TableName {
    /// From a validated, double-quoted identifier (`"name"` or `"schema"."name"`).
    fn new(quoted: &str) -> Self {
        let plain = quoted.replace('"', "");
        let (schema, table) = match plain.split_once('.') {
            Some((schema, table)) => (Some(schema.to_owned()), table.to_owned()),
            None => (None, plain),
        };
        Self {
            #[cfg(feature = "postgres")]
            quoted: quoted.to_owned(),
            schema,
            table,
        }
    }

    /// As a person writes it: `accounts`, `app.accounts`.
    fn plain(&self) -> String {
        match &self.schema {
            Some(schema) => format!("{schema}.{}", self.table),
            None => self.table.clone(),
        }
    }
}

/// Whose table it is, which decides the fix of what it lacks.
#[derive(Clone, Copy)]
enum Owner {
    /// The app's, named by a mapping ([`UserTable`], [`OrganizationTable`],
    /// [`MembershipTable`]): the app adds a column or maps the table
    /// without it. Holds what the table is and how it is mapped.
    App {
        what: &'static str,
        mapping: &'static str,
    },
    /// One of the crate's own, which `migrate()` creates.
    Crate,
}

/// A column a table needs, and what to do when it is missing.
struct Column {
    name: String,
    /// The fix for an app's table; a crate table's is always the same.
    fix: String,
}

/// One table the store needs.
struct Table {
    name: TableName,
    owner: Owner,
    columns: Vec<Column>,
    /// The column sets that must each have a unique constraint or a
    /// unique index (not partial, not on expressions).
    unique: Vec<Vec<String>>,
}

impl Table {
    /// One of the crate's own tables, with its columns and unique keys.
    fn of_crate(quoted: &str, columns: &[&str], unique: &[&[&str]]) -> Self {
        Self {
            name: TableName::new(quoted),
            owner: Owner::Crate,
            columns: columns
                .iter()
                .map(|&name| Column {
                    name: name.to_owned(),
                    fix: String::new(),
                })
                .collect(),
            unique: unique
                .iter()
                .map(|key| key.iter().map(|&column| column.to_owned()).collect())
                .collect(),
        }
    }

    fn missing(&self) -> SchemaError {
        let table = self.name.plain();
        let fix = match self.owner {
            Owner::App { what, mapping } => {
                format!("create it, or map the {what} table the app has ({mapping})")
            }
            Owner::Crate => "run `store.migrate()`, which creates it".to_owned(),
        };
        SchemaError::new(&table, None, format!("table {table} does not exist: {fix}"))
    }

    fn missing_column(&self, column: &Column) -> SchemaError {
        let table = self.name.plain();
        let fix = match self.owner {
            Owner::App { .. } => column.fix.clone(),
            Owner::Crate => "run `store.migrate()`, or, for a table made otherwise, add the \
                             column as the bundled migrations (`migrations/`) define it"
                .to_owned(),
        };
        SchemaError::new(
            &table,
            Some(&column.name),
            format!("table {table} has no column {}: {fix}", column.name),
        )
    }

    fn missing_unique(&self, key: &[String]) -> SchemaError {
        let table = self.name.plain();
        let columns = key.join(", ");
        let what = match key {
            [column] => format!("column {column} of table {table} has"),
            _ => format!("columns ({columns}) of table {table} have"),
        };
        let index = format!("{}_{}_key", self.name.table, key.join("_"));
        SchemaError::new(
            &table,
            key.first().map(String::as_str),
            format!(
                "{what} no UNIQUE constraint or unique index, which the store's \
                 `ON CONFLICT ({columns})` needs: add one \
                 (`CREATE UNIQUE INDEX {index} ON {table} ({columns})`)"
            ),
        )
    }
}

/// Everything the store needs: for users, and for organizations when they
/// are turned on.
pub(super) struct Needs {
    users: Vec<Table>,
    organizations: Vec<Table>,
}

impl Needs {
    pub(super) fn new(tables: &Tables) -> Self {
        let quote = |name: &str| format!("\"{name}\"");
        let mapping = &tables.users;
        let users = vec![
            users_table(mapping),
            Table::of_crate(
                &mapping.tombstones,
                &["clerk_id", "deleted_at"],
                &[&["clerk_id"]],
            ),
            Table::of_crate(
                &quote(ENDED_SESSIONS),
                &["session_id", "clerk_id", "until_ms"],
                &[&["session_id"]],
            ),
        ];
        let organizations = vec![
            organizations_table(&tables.organizations),
            memberships_table(&tables.memberships),
            Table::of_crate(
                &quote(ORGANIZATION_TOMBSTONES),
                &["clerk_id", "deleted_at"],
                &[&["clerk_id"]],
            ),
            Table::of_crate(
                &quote(MEMBERSHIP_TOMBSTONES),
                &["organization_clerk_id", "user_clerk_id", "deleted_at"],
                &[&["organization_clerk_id", "user_clerk_id"]],
            ),
        ];
        Self {
            users,
            organizations,
        }
    }

    /// Checks the users' tables.
    pub(super) async fn check_users<DB: Dialect>(&self, pool: &Pool<DB>) -> Result<(), StoreError> {
        check(pool, &self.users).await
    }

    /// Checks the organizations' and memberships' tables.
    pub(super) async fn check_organizations<DB: Dialect>(
        &self,
        pool: &Pool<DB>,
    ) -> Result<(), StoreError> {
        check(pool, &self.organizations).await
    }
}

/// The users table as mapped: the bundled one is the crate's, any other
/// the app's, each column with the fix for its absence.
fn users_table(mapping: &UserTable) -> Table {
    let name = TableName::new(&mapping.table);
    let owner = if *mapping == UserTable::default() {
        Owner::Crate
    } else {
        Owner::App {
            what: "users",
            mapping: "`UserTable::new(\"…\")`",
        }
    };
    let table = name.plain();
    let add_or_map =
        |column: &str, sql_type: &str, mapping: &str| add_or_map(&table, column, sql_type, mapping);
    let clerk_id = plain(&mapping.clerk_id);
    let mut columns = vec![
        Column {
            name: plain(&mapping.id),
            fix: "map the table's primary key (`.with_id_column(\"…\", IdKind::…)`)".to_owned(),
        },
        Column {
            fix: format!(
                "add it (`ALTER TABLE {table} ADD COLUMN {clerk_id} TEXT`, with a unique \
                 index) or map the column holding the Clerk user id \
                 (`.with_clerk_id_column(\"…\")`)"
            ),
            name: clerk_id.clone(),
        },
    ];
    for column in mapping.profile_columns().into_iter().flatten() {
        columns.push(add_or_map(
            &plain(column),
            "TEXT",
            "`None` for it in `.with_profile_columns(…)`",
        ));
    }
    if let Some(column) = &mapping.clerk_updated_at {
        columns.push(add_or_map(
            &plain(column),
            "BIGINT",
            "`.with_clerk_updated_at_column(None)`",
        ));
    }
    if let Some(column) = &mapping.banned {
        columns.push(add_or_map(
            &plain(column),
            "BOOLEAN NOT NULL DEFAULT FALSE",
            "`.with_banned_column(None)`",
        ));
    }
    Table {
        name,
        owner,
        columns,
        unique: vec![vec![clerk_id]],
    }
}

/// The organizations table as mapped: the bundled one is the crate's, any
/// other the app's.
fn organizations_table(mapping: &OrganizationTable) -> Table {
    let name = TableName::new(&mapping.table);
    let owner = if *mapping == OrganizationTable::default() {
        Owner::Crate
    } else {
        Owner::App {
            what: "organizations",
            mapping: "`OrganizationTable::existing(…)`",
        }
    };
    let table = name.plain();
    let clerk_id = plain(&mapping.clerk_id);
    let mut columns = vec![
        Column {
            name: plain(&mapping.id),
            fix: "map the table's primary key (the `id` of `OrganizationTable::existing`)"
                .to_owned(),
        },
        Column {
            fix: format!(
                "add it (`ALTER TABLE {table} ADD COLUMN {clerk_id} TEXT`, with a unique \
                 index) or map the column holding the Clerk organization id (the \
                 `clerk_id` of `OrganizationTable::existing`)"
            ),
            name: clerk_id.clone(),
        },
    ];
    for column in [&mapping.name, &mapping.slug, &mapping.image_url]
        .into_iter()
        .flatten()
    {
        let fix = "`None` for it in `.with_columns(…)`";
        columns.push(add_or_map(&table, &plain(column), "TEXT", fix));
    }
    if let Some(column) = &mapping.clerk_updated_at {
        let fix = "`.with_clerk_updated_at_column(None)`";
        columns.push(add_or_map(&table, &plain(column), "BIGINT", fix));
    }
    columns.extend(updated_at(mapping.updated_at.as_deref()));
    Table {
        name,
        owner,
        columns,
        unique: vec![vec![clerk_id]],
    }
}

/// The memberships table as mapped: the bundled one is the crate's, any
/// other the app's.
fn memberships_table(mapping: &MembershipTable) -> Table {
    let name = TableName::new(&mapping.table);
    let owner = if *mapping == MembershipTable::default() {
        Owner::Crate
    } else {
        Owner::App {
            what: "memberships",
            mapping: "`MembershipTable::existing(…)`",
        }
    };
    let table = name.plain();
    let required = |quoted: &str, what: &str, argument: &str| Column {
        name: plain(quoted),
        fix: format!(
            "add {what} or map the column the table has for it (the `{argument}` of \
             `MembershipTable::existing`)"
        ),
    };
    let (organization, user) = (plain(&mapping.organization), plain(&mapping.user));
    let mut columns = vec![
        required(&mapping.id, "the primary key", "id"),
        required(
            &mapping.organization,
            "a column referencing the organizations table's key",
            "organization",
        ),
        required(
            &mapping.user,
            "a column referencing the users table's key",
            "user",
        ),
        required(
            &mapping.role,
            &format!(
                "it (`ALTER TABLE {table} ADD COLUMN {} TEXT`)",
                plain(&mapping.role)
            ),
            "role",
        ),
        required(
            &mapping.role_version,
            &format!(
                "it (`ALTER TABLE {table} ADD COLUMN {} BIGINT NOT NULL DEFAULT 0`)",
                plain(&mapping.role_version)
            ),
            "role_version",
        ),
    ];
    if let Some(column) = &mapping.clerk_updated_at {
        let fix = "`.with_clerk_updated_at_column(None)`";
        columns.push(add_or_map(&table, &plain(column), "BIGINT", fix));
    }
    columns.extend(updated_at(mapping.updated_at.as_deref()));
    Table {
        name,
        owner,
        columns,
        unique: vec![vec![organization, user]],
    }
}

/// An unquoted name, as the catalog spells it.
fn plain(quoted: &str) -> String {
    quoted.replace('"', "")
}

/// An optional column of an app's table: add it, or map the table without it.
fn add_or_map(table: &str, column: &str, sql_type: &str, mapping: &str) -> Column {
    Column {
        name: column.to_owned(),
        fix: format!(
            "add it (`ALTER TABLE {table} ADD COLUMN {column} {sql_type}`) \
             or map the table without it ({mapping})"
        ),
    }
}

/// The `updated_at` column an organizations or memberships table maps, if any.
fn updated_at(column: Option<&str>) -> Option<Column> {
    Some(Column {
        name: plain(column?),
        fix: "add it (a timestamp column) or map the table without it \
              (`.with_updated_at_column(None)`)"
            .to_owned(),
    })
}

/// The first table, column or unique key of `tables` the database lacks.
async fn check<DB: Dialect>(pool: &Pool<DB>, tables: &[Table]) -> Result<(), StoreError> {
    for table in tables {
        let rows = DB::rows(pool, DB::columns_of(&table.name)).await?;
        let present = rows
            .iter()
            .map(|row| DB::text(row, 0))
            .collect::<Result<HashSet<String>, _>>()?;
        if present.is_empty() {
            return Err(table.missing().into());
        }
        if let Some(column) = table.columns.iter().find(|c| !present.contains(&c.name)) {
            return Err(table.missing_column(column).into());
        }
        let rows = DB::rows(pool, DB::unique_keys_of(&table.name)).await?;
        let mut keys: HashMap<String, BTreeSet<String>> = HashMap::new();
        for row in &rows {
            keys.entry(DB::text(row, 0)?)
                .or_default()
                .insert(DB::text(row, 1)?);
        }
        let missing = table.unique.iter().find(|needed| {
            let needed: BTreeSet<String> = needed.iter().cloned().collect();
            !keys.values().any(|key| *key == needed)
        });
        if let Some(key) = missing {
            return Err(table.missing_unique(key).into());
        }
    }
    Ok(())
}
