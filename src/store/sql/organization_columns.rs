//! What the mapped tables name, and what an organization write binds: the
//! three tables of a store ([`Tables`]), and for the organizations table,
//! the columns a statement writes in order with the value of each.

use uuid::Uuid;

use super::driver::Bind;
use crate::store::{IdKind, MembershipTable, OrganizationTable, UserTable};

/// The tables a store reads and writes, as mapped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Tables {
    pub(super) users: UserTable,
    pub(super) organizations: OrganizationTable,
    pub(super) memberships: MembershipTable,
}

impl Tables {
    /// Whether the organizations or memberships table is the app's own.
    pub(super) fn organizations_mapped(&self) -> bool {
        self.organizations != OrganizationTable::default()
            || self.memberships != MembershipTable::default()
    }
}

/// An organization's stored values: name, slug, image URL and version.
#[derive(Debug, Clone, Copy)]
pub(super) struct OrganizationValues<'a> {
    pub(super) clerk_id: &'a str,
    pub(super) name: Option<&'a str>,
    pub(super) slug: Option<&'a str>,
    pub(super) image_url: Option<&'a str>,
    pub(super) version: i64,
}

/// What an organization column is written from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Value {
    ClerkId,
    Name,
    Slug,
    ImageUrl,
    Version,
    /// A new UUID key, generated here.
    NewId,
}

/// The columns an organization write names, in order, each with where its
/// value comes from: the Clerk id first (so it is always the first value),
/// then the mapped columns among `wanted`, then a new UUID key if the key is
/// one.
pub(super) fn organization_columns(
    table: &OrganizationTable,
    wanted: &[Value],
) -> Vec<(String, Value)> {
    let mapped = [
        (Some(&table.clerk_id), Value::ClerkId),
        (table.name.as_ref(), Value::Name),
        (table.slug.as_ref(), Value::Slug),
        (table.image_url.as_ref(), Value::ImageUrl),
        (table.clerk_updated_at.as_ref(), Value::Version),
        (
            Some(&table.id).filter(|_| table.id_kind == IdKind::Uuid),
            Value::NewId,
        ),
    ];
    mapped
        .into_iter()
        .filter(|(_, value)| *value == Value::ClerkId || wanted.contains(value))
        .filter_map(|(column, value)| Some((column?.clone(), value)))
        .collect()
}

/// Every column an organization upsert writes.
pub(super) const UPSERTED: [Value; 5] = [
    Value::Name,
    Value::Slug,
    Value::ImageUrl,
    Value::Version,
    Value::NewId,
];

/// An organization's values for `columns` (see [`organization_columns`]),
/// in their order.
pub(super) fn organization_binds<'a>(
    values: &OrganizationValues<'a>,
    columns: &[Value],
) -> Vec<Bind<'a>> {
    columns
        .iter()
        .map(|column| match column {
            Value::ClerkId => Bind::Text(values.clerk_id),
            Value::Name => Bind::MaybeText(values.name),
            Value::Slug => Bind::MaybeText(values.slug),
            Value::ImageUrl => Bind::MaybeText(values.image_url),
            Value::Version => Bind::Int(values.version),
            Value::NewId => Bind::Uuid(Uuid::new_v4()),
        })
        .collect()
}

/// The `SET` of an organization upsert: every mapped column written but
/// the Clerk id and the key, or the Clerk id itself when there is none
/// (so that the upsert still returns the row).
pub(super) fn organization_assignments(
    table: &OrganizationTable,
    columns: &[(String, Value)],
) -> String {
    let assigned: Vec<String> = columns
        .iter()
        .filter(|(_, value)| !matches!(value, Value::ClerkId | Value::NewId))
        .map(|(column, _)| format!("{column} = excluded.{column}"))
        .collect();
    if assigned.is_empty() {
        let column = &table.clerk_id;
        format!("{column} = excluded.{column}")
    } else {
        assigned.join(", ")
    }
}
