//! Leadership among replicas that share one database (issue: high availability).
//!
//! On PostgreSQL the leader holds a session-level advisory lock on a connection of its
//! own, kept apart from the store's pools so that no query of theirs can release it. The
//! lock lives exactly as long as that session: when the leader process dies its socket
//! closes and the server frees the lock at once; when the leader hangs or loses the
//! network, the server ends the session after `idle_session_timeout`, which the lease
//! sets to half the failover bound while the leader renews three times per bound. Every
//! renewal also writes the replica's row in `replicas` through the same connection, so a
//! renewal that succeeds proves the lock is still held, and a renewal that fails (or takes
//! too long) is taken as lost leadership: the caller must stop leading at once.
//!
//! On SQLite there is one process per database file, so the lease is always held and
//! nothing is written.

use std::collections::BTreeSet;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection, Row};

use super::Store;
use super::backend::{Backend, with_pool};
use super::error::{StoreError, query_error};
use crate::time::Timestamp;

/// The advisory lock key of the leader lease, as SQL: a hash of the schema the tables
/// live in, so that deployments in different schemas of one database do not contend.
/// (Advisory locks are already per database.)
const LEADER_LOCK_KEY: &str = "hashtextextended('vastwatch leader ' || current_schema(), 0)";

/// The key of one target's lock in `shard` mode (`$1`: the target's name).
const TARGET_LOCK_KEY: &str =
    "hashtextextended('vastwatch target ' || current_schema() || ' ' || $1, 0)";

/// The key of the lock each replica holds while it lives (`$1`: the replica id): the
/// live replicas are those whose lock is held, which the server knows the moment a
/// replica's session ends.
const REPLICA_LOCK_KEY: &str =
    "hashtextextended('vastwatch replica ' || current_schema() || ' ' || $1, 0)";

/// The advisory lock with key `key` (an SQL expression), as `pg_locks` shows it.
macro_rules! advisory_lock_row {
    ($key:expr) => {
        concat!(
            "l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 ",
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) ",
            "AND ((l.classid::bigint << 32) | l.objid::bigint) = ",
            $key
        )
    };
}

/// A replica's role, as stored in `replicas` and shown by `/api/v1/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Standby,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Standby => "standby",
        }
    }
}

/// One replica's last renewal, from `replicas`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaRow {
    pub replica: String,
    pub role: String,
    pub started_at: Timestamp,
    pub renewed_at: Timestamp,
}

/// This replica's claim on leadership. Drive it with [`Lease::renew`] a few times per
/// failover bound.
#[derive(Debug)]
pub struct Lease {
    replica: String,
    started_at: Timestamp,
    kind: LeaseKind,
}

#[derive(Debug)]
enum LeaseKind {
    /// One process per database: always the leader.
    Solo,
    Postgres(Box<PgLease>),
}

struct PgLease {
    options: PgConnectOptions,
    failover: Duration,
    connection: Option<PgConnection>,
    held: bool,
    /// Targets whose lock this session holds (`shard` mode).
    targets: BTreeSet<String>,
}

impl Lease {
    /// The lease of a single process on its own database file.
    pub(super) fn solo(replica: String, started_at: Timestamp) -> Lease {
        Lease {
            replica,
            started_at,
            kind: LeaseKind::Solo,
        }
    }

    /// A lease on a PostgreSQL database, contested by every replica that shares it.
    pub(super) fn postgres(
        options: PgConnectOptions,
        replica: String,
        failover: Duration,
        started_at: Timestamp,
    ) -> Lease {
        // The server ends a session that stays idle this long, which frees a hung
        // leader's lock; renewals come three times as often.
        let idle = (failover / 2).max(Duration::from_millis(500));
        let options = options
            .application_name(&format!("vastwatch lease {replica}"))
            .options([("idle_session_timeout", format!("{}ms", idle.as_millis()))]);
        Lease {
            replica,
            started_at,
            kind: LeaseKind::Postgres(Box::new(PgLease {
                options,
                failover,
                connection: None,
                held: false,
                targets: BTreeSet::new(),
            })),
        }
    }

    /// This replica's id.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Whether this replica led at its last renewal.
    pub fn is_held(&self) -> bool {
        match &self.kind {
            LeaseKind::Solo => true,
            LeaseKind::Postgres(lease) => lease.held,
        }
    }

    /// One renewal at `now`: a leader confirms it still holds the lock, a standby tries to
    /// take it, and either records itself in `replicas`. Returns whether this replica
    /// leads now. An error means the lease's connection failed: the replica does not lead
    /// (the next renewal reconnects).
    pub async fn renew(&mut self, now: Timestamp) -> Result<bool, StoreError> {
        let LeaseKind::Postgres(lease) = &mut self.kind else {
            return Ok(true);
        };
        // A renewal that outlasts a third of the bound counts as failed: by then the
        // server may already have ended the session and another replica may lead.
        let limit = (lease.failover / 3).max(Duration::from_millis(200));
        let outcome =
            tokio::time::timeout(limit, lease.renew(&self.replica, self.started_at, now)).await;
        match outcome {
            Ok(Ok(held)) => {
                lease.held = held;
                Ok(held)
            }
            Ok(Err(error)) => {
                lease.lose();
                Err(error)
            }
            Err(_) => {
                lease.lose();
                Err(StoreError::LeaseTimeout { limit })
            }
        }
    }

    /// Gives leadership up (on shutdown), so a standby takes over at its next renewal
    /// instead of after the failover bound.
    pub async fn release(&mut self) {
        if let LeaseKind::Postgres(lease) = &mut self.kind
            && let Some(mut connection) = lease.connection.take()
        {
            let _ = sqlx::query("DELETE FROM replicas WHERE replica = $1")
                .bind(&self.replica)
                .execute(&mut connection)
                .await;
            let _ = connection.close().await;
            lease.held = false;
        }
    }
}

impl Lease {
    /// The replicas alive now, by id: on PostgreSQL those whose session holds their
    /// replica lock; on SQLite this process alone.
    pub async fn live_replicas(&mut self) -> Result<Vec<String>, StoreError> {
        let LeaseKind::Postgres(lease) = &mut self.kind else {
            return Ok(vec![self.replica.clone()]);
        };
        let connection = lease.connected()?;
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT r.replica FROM replicas AS r WHERE EXISTS (SELECT 1 FROM pg_locks AS l \
             WHERE {}) ORDER BY r.replica",
            advisory_lock_row!(
                "hashtextextended('vastwatch replica ' || current_schema() || ' ' || r.replica, 0)"
            )
        )))
        .fetch_all(connection)
        .await
        .map_err(|error| lease.fail(error, "reading the live replicas"))
    }

    /// Takes the lock of every target in `wanted` that this replica does not hold yet and
    /// no other replica holds; returns the targets of `wanted` it holds now. Locks on
    /// targets outside `wanted` are kept until [`Lease::release_targets`].
    pub async fn hold_targets(
        &mut self,
        wanted: &BTreeSet<String>,
    ) -> Result<BTreeSet<String>, StoreError> {
        let LeaseKind::Postgres(lease) = &mut self.kind else {
            return Ok(wanted.clone());
        };
        for target in wanted.difference(&lease.targets.clone()) {
            let connection = lease.connected()?;
            let taken: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT pg_try_advisory_lock({TARGET_LOCK_KEY})"
            )))
            .bind(target)
            .fetch_one(connection)
            .await
            .map_err(|error| lease.fail(error, "locking a target"))?;
            if taken {
                lease.targets.insert(target.clone());
            }
        }
        Ok(lease.targets.intersection(wanted).cloned().collect())
    }

    /// Lets other replicas take these targets (once this one has stopped polling them).
    /// A failure is left to the next renewal: the session, and its locks, then end.
    pub async fn release_targets(&mut self, targets: &[String]) {
        let LeaseKind::Postgres(lease) = &mut self.kind else {
            return;
        };
        for target in targets {
            let Some(connection) = lease.connection.as_mut() else {
                return;
            };
            let released = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT pg_advisory_unlock({TARGET_LOCK_KEY})"
            )))
            .bind(target)
            .execute(connection)
            .await;
            match released {
                Ok(_) => {
                    lease.targets.remove(target);
                }
                Err(error) => {
                    lease.fail(error, "unlocking a target");
                    return;
                }
            }
        }
    }
}

impl Store {
    /// This replica's lease on the database: contested on PostgreSQL, always held on a
    /// SQLite file (one process per file).
    pub fn lease(&self, replica: &str, failover: Duration, now: Timestamp) -> Lease {
        match &self.backend {
            Backend::Sqlite(_) => Lease::solo(replica.to_string(), now),
            Backend::Postgres(postgres) => Lease::postgres(
                (*postgres.pool.connect_options()).clone(),
                replica.to_string(),
                failover,
                now,
            ),
        }
    }

    /// Every replica that recorded a renewal, leader first, then by id.
    pub async fn replicas(&self) -> Result<Vec<ReplicaRow>, StoreError> {
        const OPERATION: &str = "reading the replicas";
        with_pool!(self, readers, |pool, dialect| {
            let rows = sqlx::query(dialect.sql(
                "SELECT replica, role, started_at, renewed_at FROM replicas \
                 ORDER BY role = 'leader' DESC, replica",
            ))
            .fetch_all(pool)
            .await
            .map_err(query_error(OPERATION))?;
            rows.iter()
                .map(|row| {
                    Ok(ReplicaRow {
                        replica: row.try_get("replica")?,
                        role: row.try_get("role")?,
                        started_at: Timestamp::from_unix_secs_f64(row.try_get("started_at")?),
                        renewed_at: Timestamp::from_unix_secs_f64(row.try_get("renewed_at")?),
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(query_error(OPERATION))
        })
    }
}

/// Leaves out the connect options: they hold the database password.
impl std::fmt::Debug for PgLease {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PgLease")
            .field("failover", &self.failover)
            .field("connected", &self.connection.is_some())
            .field("held", &self.held)
            .field("targets", &self.targets)
            .finish()
    }
}

impl PgLease {
    async fn renew(
        &mut self,
        replica: &str,
        started_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        if self.connection.is_none() {
            self.held = false;
            self.targets.clear();
            let mut connection = PgConnection::connect_with(&self.options)
                .await
                .map_err(query_error("connecting for the lease"))?;
            let alone: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT pg_try_advisory_lock({REPLICA_LOCK_KEY})"
            )))
            .bind(replica)
            .fetch_one(&mut connection)
            .await
            .map_err(query_error("taking the replica lock"))?;
            if !alone {
                return Err(StoreError::ReplicaTaken {
                    replica: replica.to_string(),
                });
            }
            self.connection = Some(connection);
        }
        let was_held = self.held;
        let connection = self.connected()?;
        let held = if was_held {
            // Session locks are re-entrant; ask whether this session still holds it
            // rather than taking it a second time.
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
                 AND pid = pg_backend_pid() AND granted AND objsubid = 1 \
                 AND ((classid::bigint << 32) | objid::bigint) = {LEADER_LOCK_KEY})"
            )))
            .fetch_one(&mut *connection)
            .await
            .map_err(query_error("renewing the leader lease"))?
            .try_get::<bool, _>(0)
            .map_err(query_error("renewing the leader lease"))?
        } else {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT pg_try_advisory_lock({LEADER_LOCK_KEY})"
            )))
            .fetch_one(&mut *connection)
            .await
            .map_err(query_error("taking the leader lease"))?
            .try_get::<bool, _>(0)
            .map_err(query_error("taking the leader lease"))?
        };
        let role = if held { Role::Leader } else { Role::Standby };
        sqlx::query(
            "INSERT INTO replicas (replica, role, started_at, renewed_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (replica) DO UPDATE SET role = excluded.role, \
             started_at = excluded.started_at, renewed_at = excluded.renewed_at",
        )
        .bind(replica)
        .bind(role.as_str())
        .bind(started_at.unix_secs_f64())
        .bind(now.unix_secs_f64())
        .execute(&mut *connection)
        .await
        .map_err(query_error("recording the replica's renewal"))?;
        Ok(held)
    }

    /// Drops the connection, and the locks with it if the session still lives.
    fn lose(&mut self) {
        self.held = false;
        self.targets.clear();
        self.connection = None;
    }

    fn connected(&mut self) -> Result<&mut PgConnection, StoreError> {
        self.connection.as_mut().ok_or(StoreError::LeaseLost)
    }

    /// A statement on the lease's connection failed: the session, and every lock it
    /// held, must be taken as gone.
    fn fail(&mut self, source: sqlx::Error, operation: &'static str) -> StoreError {
        self.lose();
        StoreError::Query { operation, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_db::{TestDb, execute, finish_dropping};

    /// A store on a fresh schema of the test server (its migrations create `replicas`),
    /// or `None` (with a line saying so) when no server answers.
    async fn postgres_store() -> Option<(Store, TestDb)> {
        let db = TestDb::postgres().await?;
        let store = Store::open(db.database()).await.expect("store opens");
        Some((store, db))
    }

    async fn finish(store: Store, db: TestDb) {
        store.close().await.expect("store closes");
        drop(db);
        finish_dropping().await;
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_unix_millis(secs * 1000)
    }

    /// Renews `lease` at each of `seconds`, `pause` of real time apart, until it leads;
    /// whether it came to lead.
    async fn renews_as_leader(
        lease: &mut Lease,
        seconds: std::ops::Range<i64>,
        pause: Duration,
    ) -> bool {
        for second in seconds {
            if lease.renew(at(second)).await.expect("renews") {
                return true;
            }
            tokio::time::sleep(pause).await;
        }
        false
    }

    #[tokio::test]
    async fn one_replica_leads_and_another_takes_over_when_its_session_ends() {
        let Some((store, db)) = postgres_store().await else {
            return;
        };
        let failover = Duration::from_secs(6);
        let mut a = store.lease("a", failover, at(0));
        let mut b = store.lease("b", failover, at(1));
        assert!(
            a.renew(at(2)).await.expect("a renews"),
            "the first one leads"
        );
        assert!(
            !b.renew(at(2)).await.expect("b renews"),
            "the second stands by"
        );
        assert!(
            a.renew(at(4)).await.expect("a renews"),
            "a leader stays leader"
        );
        assert!(!b.renew(at(4)).await.expect("b renews"));

        let rows: Vec<(String, String, Timestamp)> = store
            .replicas()
            .await
            .expect("replicas")
            .into_iter()
            .map(|row| (row.replica, row.role, row.renewed_at))
            .collect();
        assert_eq!(
            rows,
            [
                ("a".to_string(), "leader".to_string(), at(4)),
                ("b".to_string(), "standby".to_string(), at(4))
            ]
        );

        // The leader process dies: its socket closes and the server frees the lock.
        drop(a);
        let took_over = renews_as_leader(&mut b, 5..60, Duration::from_millis(100)).await;
        assert!(took_over, "b takes over once a's session is gone");
        b.release().await;
        finish(store, db).await;
    }

    #[tokio::test]
    async fn a_leader_whose_session_is_terminated_stops_leading_at_its_next_renewal() {
        let Some((store, db)) = postgres_store().await else {
            return;
        };
        let failover = Duration::from_secs(6);
        let mut a = store.lease("terminated-a", failover, at(0));
        let mut b = store.lease("b", failover, at(0));
        assert!(a.renew(at(1)).await.expect("a renews"));
        // An operator (or a failover of the database) ends the leader's session.
        execute(
            &store,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'vastwatch lease terminated-a'",
        )
        .await;
        let b_leads = renews_as_leader(&mut b, 2..60, Duration::from_millis(100)).await;
        assert!(b_leads, "b takes the freed lock");
        assert!(
            a.renew(at(61)).await.is_err(),
            "a learns its session is gone"
        );
        assert!(!a.is_held());
        assert!(
            !a.renew(at(62)).await.expect("a reconnects"),
            "and comes back as a standby"
        );
        a.release().await;
        b.release().await;
        finish(store, db).await;
    }

    #[tokio::test]
    async fn the_server_ends_a_hung_leaders_session_within_the_failover_bound() {
        let Some((store, db)) = postgres_store().await else {
            return;
        };
        let failover = Duration::from_secs(2);
        let mut a = store.lease("a", failover, at(0));
        let mut b = store.lease("b", failover, at(0));
        assert!(a.renew(at(1)).await.expect("a renews"));
        // `a` hangs: it neither renews nor closes its connection. The server ends its idle
        // session after half the bound, which frees the lock.
        let b_leads = renews_as_leader(&mut b, 2..100, Duration::from_millis(200)).await;
        assert!(b_leads, "b takes over from the hung leader");
        assert!(a.renew(at(101)).await.is_err(), "a's session was ended");
        b.release().await;
        drop(a);
        finish(store, db).await;
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[tokio::test]
    async fn each_target_lock_has_one_holder_and_live_replicas_follow_their_sessions() {
        let Some((store, db)) = postgres_store().await else {
            return;
        };
        let failover = Duration::from_secs(6);
        let mut a = store.lease("shard-a", failover, at(0));
        let mut b = store.lease("shard-b", failover, at(0));
        a.renew(at(1)).await.expect("a renews");
        b.renew(at(1)).await.expect("b renews");
        assert_eq!(
            a.live_replicas().await.expect("live"),
            ["shard-a", "shard-b"]
        );

        assert_eq!(
            a.hold_targets(&set(&["t1", "t2"])).await.expect("a"),
            set(&["t1", "t2"])
        );
        assert_eq!(
            b.hold_targets(&set(&["t2", "t3"])).await.expect("b"),
            set(&["t3"]),
            "t2 stays a's until a lets it go"
        );
        // a no longer wants t2: it keeps the lock until it releases it.
        assert_eq!(
            a.hold_targets(&set(&["t1"])).await.expect("a"),
            set(&["t1"])
        );
        assert_eq!(
            b.hold_targets(&set(&["t2", "t3"])).await.expect("b"),
            set(&["t3"])
        );
        a.release_targets(&["t2".to_string()]).await;
        assert_eq!(
            b.hold_targets(&set(&["t2", "t3"])).await.expect("b"),
            set(&["t2", "t3"])
        );

        // b dies: its session, its replica lock and its target locks go with it.
        drop(b);
        let mut live = Vec::new();
        for _ in 0..50 {
            live = a.live_replicas().await.expect("live");
            if live.len() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(live, ["shard-a"]);
        assert_eq!(
            a.hold_targets(&set(&["t1", "t2", "t3"])).await.expect("a"),
            set(&["t1", "t2", "t3"])
        );

        // A second process with a's id is refused while a lives.
        let mut twin = store.lease("shard-a", failover, at(0));
        let refused = twin.renew(at(2)).await.expect_err("twin refused");
        assert!(
            matches!(refused, StoreError::ReplicaTaken { .. }),
            "{refused}"
        );
        a.release().await;
        finish(store, db).await;
    }

    #[tokio::test]
    async fn on_a_sqlite_file_the_lease_is_always_held() {
        let mut lease = Lease::solo("only".into(), at(0));
        assert!(lease.is_held());
        assert!(lease.renew(at(1)).await.expect("nothing to fail"));
    }
}
