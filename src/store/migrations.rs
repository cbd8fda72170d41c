//! The schema migrations of both backends, embedded in the binary so a bare `vastwatch`
//! can create its database anywhere.
//!
//! Each file in `migrations/sqlite/` and `migrations/postgres/` is listed here once, in
//! version order; a test checks that each list and its folder agree. Both folders hold the
//! same versions, and create the same public tables, columns and views. Never edit a released migration: sqlx stores each
//! one's checksum and refuses a database whose history differs. Add a new file instead.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// `(version, description, sql)`, named as sqlx names `<VERSION>_<DESCRIPTION>.sql` files,
/// so switching to `sqlx::migrate!` later finds the same versions and checksums.
pub(super) const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "history",
        include_str!("../../migrations/sqlite/0001_history.sql"),
    ),
    (
        2,
        "alerts",
        include_str!("../../migrations/sqlite/0002_alerts.sql"),
    ),
    (
        3,
        "recommendations",
        include_str!("../../migrations/sqlite/0003_recommendations.sql"),
    ),
    (
        4,
        "notifications",
        include_str!("../../migrations/sqlite/0004_notifications.sql"),
    ),
    (
        5,
        "rollups",
        include_str!("../../migrations/sqlite/0005_rollups.sql"),
    ),
    (
        6,
        "replicas",
        include_str!("../../migrations/sqlite/0006_replicas.sql"),
    ),
    (
        7,
        "drop_poll_foreign_keys",
        include_str!("../../migrations/sqlite/0007_drop_poll_foreign_keys.sql"),
    ),
];

/// The same versions for PostgreSQL: times are DOUBLE PRECISION, integers BIGINT.
pub(super) const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "history",
        include_str!("../../migrations/postgres/0001_history.sql"),
    ),
    (
        2,
        "alerts",
        include_str!("../../migrations/postgres/0002_alerts.sql"),
    ),
    (
        3,
        "recommendations",
        include_str!("../../migrations/postgres/0003_recommendations.sql"),
    ),
    (
        4,
        "notifications",
        include_str!("../../migrations/postgres/0004_notifications.sql"),
    ),
    (
        5,
        "rollups",
        include_str!("../../migrations/postgres/0005_rollups.sql"),
    ),
    (
        6,
        "replicas",
        include_str!("../../migrations/postgres/0006_replicas.sql"),
    ),
    (
        7,
        "drop_poll_foreign_keys",
        include_str!("../../migrations/postgres/0007_drop_poll_foreign_keys.sql"),
    ),
];

/// A migrator over [`SQLITE_MIGRATIONS`].
pub(super) fn sqlite_migrator() -> Migrator {
    migrator(SQLITE_MIGRATIONS)
}

/// A migrator over [`POSTGRES_MIGRATIONS`].
pub(super) fn postgres_migrator() -> Migrator {
    migrator(POSTGRES_MIGRATIONS)
}

fn migrator(migrations: &'static [(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        migrations
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_in_the_migrations_folders_is_embedded_in_order() {
        check_folder("sqlite", SQLITE_MIGRATIONS);
        check_folder("postgres", POSTGRES_MIGRATIONS);
    }

    fn check_folder(name: &str, migrations: &[(i64, &str, &str)]) {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(name);
        let mut files: Vec<String> = std::fs::read_dir(&folder)
            .expect("the migrations folder exists")
            .map(|entry| entry.expect("readable entry").file_name())
            .map(|name| name.to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".sql"))
            .collect();
        files.sort();
        let embedded: Vec<String> = migrations
            .iter()
            .map(|(version, description, _)| format!("{version:04}_{description}.sql"))
            .collect();
        assert_eq!(files, embedded);
    }
}
