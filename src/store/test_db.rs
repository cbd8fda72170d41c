//! Databases for the store's tests, on both backends: [`store_tests!`] turns each test body
//! into a `sqlite` and a `postgres` test.
//!
//! SQLite tests get a file in a fresh temporary folder. PostgreSQL tests get a fresh schema
//! on the server `VASTWATCH_TEST_POSTGRES` names (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), dropped when the test ends (a failed
//! test may leave its `vw_test_*` schema for a look), so tests run in parallel and leave
//! nothing behind. When no server answers, a PostgreSQL test says so
//! on one line and passes.

use std::sync::Mutex;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tempfile::TempDir;

use super::Store;
use super::backend::{Backend, with_pool};
use crate::config::{Database, PostgresUrl};

/// The server the PostgreSQL tests use unless `VASTWATCH_TEST_POSTGRES` names another.
pub(crate) const DEFAULT_TEST_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database for one test, removed when dropped.
pub(crate) enum TestDb {
    Sqlite {
        folder: TempDir,
    },
    Postgres {
        /// The server's URL, without the schema.
        server: String,
        schema: String,
    },
}

impl TestDb {
    pub(crate) fn sqlite() -> TestDb {
        TestDb::Sqlite {
            folder: TempDir::new().expect("temporary folder"),
        }
    }

    /// A fresh schema on the test server, or `None` (after saying so) when none answers.
    pub(crate) async fn postgres() -> Option<TestDb> {
        let server = test_postgres_url();
        let Some(mut connection) = connect(&server).await else {
            println!(
                "skipping: no PostgreSQL at {} (set VASTWATCH_TEST_POSTGRES)",
                shown(&server)
            );
            return None;
        };
        let schema = format!("vw_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut connection)
            .await
            .expect("the test server lets us create a schema");
        Some(TestDb::Postgres { server, schema })
    }

    /// The database a store opens; every call names the same one.
    pub(crate) fn database(&self) -> Database {
        match self {
            TestDb::Sqlite { folder } => Database::Sqlite(folder.path().join("vastwatch.db")),
            TestDb::Postgres { server, schema } => Database::Postgres(
                PostgresUrl::parse(&schema_url(server, schema)).expect("the test URL parses"),
            ),
        }
    }

    /// A fresh database of the same backend, for tests that need more than one.
    pub(crate) async fn another(&self) -> TestDb {
        match self {
            TestDb::Sqlite { .. } => TestDb::sqlite(),
            TestDb::Postgres { .. } => TestDb::postgres()
                .await
                .expect("the server answered a moment ago"),
        }
    }
}

/// Schemas being dropped, by the threads doing it.
static DROPPING: Mutex<Vec<std::thread::JoinHandle<()>>> = Mutex::new(Vec::new());

impl Drop for TestDb {
    /// Starts dropping the schema. Drop runs on the test's runtime, which must keep
    /// running meanwhile (a store's connections may still have a rollback to send before
    /// the schema's locks are free), so a thread of its own drops it and
    /// [`finish_dropping`] waits for it.
    fn drop(&mut self) {
        let TestDb::Postgres { server, schema } = self else {
            return;
        };
        let (server, schema) = (server.clone(), schema.clone());
        let dropping = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                if let Some(mut connection) = connect(&server).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP SCHEMA IF EXISTS {schema} CASCADE"
                    )))
                    .execute(&mut connection)
                    .await;
                }
            });
        });
        DROPPING.lock().expect("not poisoned").push(dropping);
    }
}

/// Waits until every schema whose [`TestDb`] was dropped is gone.
pub(crate) async fn finish_dropping() {
    let dropping: Vec<_> = std::mem::take(&mut *DROPPING.lock().expect("not poisoned"));
    for thread in dropping {
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}

/// Runs a fixture statement (SQLite's parameter syntax, no parameters) on either backend.
pub(crate) async fn execute(store: &Store, sql: impl Into<String>) {
    let sql = sql.into();
    with_pool!(store, writer, |pool, dialect| {
        sqlx::query(dialect.owned(sql.clone()))
            .execute(pool)
            .await
            .unwrap_or_else(|error| panic!("{sql}: {error}"));
    });
}

/// The writer and the read pool of a SQLite store, for tests about SQLite itself.
pub(crate) fn sqlite_pools(store: &Store) -> (&sqlx::SqlitePool, &sqlx::SqlitePool) {
    match &store.backend {
        Backend::Sqlite(sqlite) => (&sqlite.writer, &sqlite.readers),
        Backend::Postgres(_) => panic!("a SQLite store"),
    }
}

/// The URL of the PostgreSQL server for tests.
pub(crate) fn test_postgres_url() -> String {
    std::env::var("VASTWATCH_TEST_POSTGRES")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_TEST_POSTGRES.to_string())
}

/// `server` with every connection's search path set to `schema`.
pub(crate) fn schema_url(server: &str, schema: &str) -> String {
    let separator = if server.contains('?') { '&' } else { '?' };
    format!("{server}{separator}options[search_path]={schema}")
}

fn shown(server: &str) -> String {
    PostgresUrl::parse(server)
        .map_or_else(|_| "(an unparsable URL)".to_string(), |url| url.to_string())
}

async fn connect(server: &str) -> Option<PgConnection> {
    let options: PgConnectOptions = server.parse().ok()?;
    tokio::time::timeout(Duration::from_secs(3), PgConnection::connect_with(&options))
        .await
        .ok()?
        .ok()
}

/// Turns each `async fn name(db: TestDb) { ... }` into that function and a module `name`
/// with a `sqlite` and a `postgres` test that call it; the PostgreSQL one passes with a
/// note when no server answers.
macro_rules! store_tests {
    ($($(#[$meta:meta])* async fn $name:ident($db:ident: TestDb) $body:block)*) => {$(
        $(#[$meta])*
        async fn $name($db: $crate::store::test_db::TestDb) $body

        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::store::test_db::TestDb::sqlite()).await;
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(db) = $crate::store::test_db::TestDb::postgres().await {
                    super::$name(db).await;
                    $crate::store::test_db::finish_dropping().await;
                }
            }
        }
    )*};
}
pub(crate) use store_tests;
