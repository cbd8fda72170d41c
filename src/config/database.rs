//! `database:` and `database_env:`: where the store lives, a SQLite file or a PostgreSQL
//! server. A PostgreSQL password is a secret: it comes only from the environment, and every
//! display of the location (`Display`, `Debug`, errors, `check`) leaves it out.

use std::fmt;
use std::path::{Path, PathBuf};

use super::Secret;

/// The database the store opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file, created with its schema when missing.
    Sqlite(PathBuf),
    /// A PostgreSQL database, whose schema is created when missing.
    Postgres(PostgresUrl),
}

impl Database {
    /// Reads a `database:` value: a `postgres://` or `postgresql://` URL, else a SQLite path
    /// (a `sqlite:` prefix, and `//` after it, are dropped) resolved against `base_dir`. The
    /// error never repeats the value, which may have come from a secret variable.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Database, String> {
        let text = text.trim();
        if is_postgres_url(text) {
            return PostgresUrl::parse(text).map(Database::Postgres);
        }
        let path = text.strip_prefix("sqlite:").unwrap_or(text);
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() {
            return Err("must name a SQLite file or a postgres:// URL".to_string());
        }
        Ok(Database::Sqlite(base_dir.join(path)))
    }

    /// The SQLite file, for a SQLite database.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Database::Sqlite(path) => Some(path),
            Database::Postgres(_) => None,
        }
    }

    /// Whether the database certainly does not exist yet: a SQLite file that is missing.
    /// A server is only known to lack the schema once connected.
    pub fn is_missing(&self) -> bool {
        self.sqlite_path().is_some_and(|path| !path.exists())
    }
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres(url) => write!(f, "{url}"),
        }
    }
}

impl From<&Path> for Database {
    fn from(path: &Path) -> Self {
        Database::Sqlite(path.to_path_buf())
    }
}

impl From<PathBuf> for Database {
    fn from(path: PathBuf) -> Self {
        Database::Sqlite(path)
    }
}

impl From<&PathBuf> for Database {
    fn from(path: &PathBuf) -> Self {
        Database::Sqlite(path.clone())
    }
}

impl From<&Database> for Database {
    fn from(database: &Database) -> Self {
        database.clone()
    }
}

/// Whether `text` names a PostgreSQL server rather than a SQLite file.
pub fn is_postgres_url(text: &str) -> bool {
    let lower = text.trim().to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// A PostgreSQL connection URL. It shows only as `postgres://user@host:port/db`; the full
/// URL, password included, is reachable only through [`PostgresUrl::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl {
    url: Secret,
    shown: String,
    has_password: bool,
}

impl PostgresUrl {
    /// Parses a `postgres://` URL. The error describes the problem without the URL.
    pub fn parse(text: &str) -> Result<PostgresUrl, String> {
        let url = reqwest::Url::parse(text.trim())
            .map_err(|error| format!("is not a valid postgres:// URL ({error})"))?;
        let has_password = url.password().is_some()
            || url
                .query_pairs()
                .any(|(key, _)| key.eq_ignore_ascii_case("password"));
        let user = match url.username() {
            "" => String::new(),
            user => format!("{user}@"),
        };
        let host = url.host_str().filter(|host| !host.is_empty());
        let shown = format!(
            "postgres://{user}{}:{}/{}",
            host.unwrap_or("localhost"),
            url.port().unwrap_or(5432),
            url.path().trim_start_matches('/')
        );
        Ok(PostgresUrl {
            url: Secret::new(text.trim()),
            shown,
            has_password,
        })
    }

    /// The whole URL, password included, for the one place that connects.
    pub fn expose(&self) -> &str {
        self.url.expose()
    }

    /// Whether the URL carries a password (in its user part or as a `password` parameter).
    pub fn has_password(&self) -> bool {
        self.has_password
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_url_shows_without_its_password() {
        let Database::Postgres(url) = Database::parse(
            "postgres://alice:s3cret@db.example:6432/watch",
            Path::new("/"),
        )
        .unwrap() else {
            panic!("a postgres:// URL is PostgreSQL");
        };
        assert!(url.has_password());
        assert_eq!(url.to_string(), "postgres://alice@db.example:6432/watch");
        assert_eq!(format!("{url:?}"), "postgres://alice@db.example:6432/watch");
        assert_eq!(
            url.expose(),
            "postgres://alice:s3cret@db.example:6432/watch"
        );
    }

    #[test]
    fn a_password_parameter_counts_as_a_password_and_the_port_defaults() {
        let url = PostgresUrl::parse("postgresql://bob@localhost/vw?password=hunter2").unwrap();
        assert!(url.has_password());
        assert_eq!(url.to_string(), "postgres://bob@localhost:5432/vw");
        assert!(
            !PostgresUrl::parse("postgres://bob@h/vw")
                .unwrap()
                .has_password()
        );
    }

    #[test]
    fn anything_else_is_a_sqlite_file_relative_to_the_config() {
        let base = Path::new("/etc/vastwatch");
        for (text, path) in [
            ("vastwatch.db", "/etc/vastwatch/vastwatch.db"),
            ("sqlite:data/v.db", "/etc/vastwatch/data/v.db"),
            ("sqlite:///var/lib/v.db", "/var/lib/v.db"),
        ] {
            assert_eq!(
                Database::parse(text, base).unwrap(),
                Database::Sqlite(PathBuf::from(path)),
                "{text}"
            );
        }
        assert!(Database::parse("sqlite:", base).is_err());
    }

    #[test]
    fn a_bad_url_error_does_not_repeat_the_url() {
        let error = Database::parse("postgres://u:pw@[bad/db", Path::new("/")).unwrap_err();
        assert!(!error.contains("pw"), "{error}");
    }
}
