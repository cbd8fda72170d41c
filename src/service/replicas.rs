//! Replicas sharing one PostgreSQL database (`ha:`): at every renewal of its lease the
//! service works out this replica's duties and, when they change, replaces its daemon
//! with one that does the new share.
//!
//! - `leader` mode: the replica holding the leader lock polls, evaluates, queues
//!   notifications and applies retention; the others stand by and serve the API.
//! - `shard` mode: the live replicas split the targets between them (rendezvous hashing,
//!   [`crate::shard`]), each target behind a lock of its own so it never has two owners;
//!   the leader also queues notifications and applies retention.
//!
//! Renewals come three times per failover bound. A replica whose renewal fails has lost
//! its locks (they live in the lease's session): it stops polling at once, cutting its
//! in-flight work short, since another replica may already have taken over.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info, warn};

use super::{Running, Service};
use crate::clock::Clock;
use crate::config::{Config, HaMode};
use crate::daemon::{Daemon, Duties};
use crate::store::{Lease, Role, Store, StoreError};
use crate::time::Timestamp;

/// This replica's part among replicas sharing one database, for `/api/v1/status`,
/// `/readyz` and `/metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaState {
    /// The replica id (`ha.replica_id`); `None` without `ha:`, where this process alone
    /// uses its database and does everything.
    pub replica: Option<String>,
    /// `None` without `ha:`.
    pub mode: Option<HaMode>,
    /// Whether it holds the leader lock.
    pub role: Role,
    /// In `shard` mode, the targets this replica polls.
    pub targets: Option<BTreeSet<String>>,
    /// The last renewal that reached the database.
    pub renewed_at: Option<Timestamp>,
    /// `ha.failover`, when `ha:` is set.
    pub failover: Option<Duration>,
}

impl ReplicaState {
    /// A process without `ha:`: it alone uses its database, and leads.
    pub fn single() -> ReplicaState {
        ReplicaState {
            replica: None,
            mode: None,
            role: Role::Leader,
            targets: None,
            renewed_at: None,
            failover: None,
        }
    }
}

/// The duties to start with: without `ha:` everything; with it, what a first renewal
/// grants (a standby's when the database cannot be reached yet).
pub(super) async fn first_duties(
    lease: Option<&mut Lease>,
    store: &Store,
    config: &Config,
    clock: &Clock,
) -> (ReplicaState, Duties) {
    let (Some(lease), Some(ha)) = (lease, &config.ha) else {
        return (ReplicaState::single(), Duties::all());
    };
    let now = clock.now();
    let granted = assign(lease, store, ha.mode, &target_names(config), now).await;
    if let Err(lease_error) = &granted {
        warn!(error = %lease_error, "Cannot reach the lease; starting as a standby.");
    }
    let duties = granted
        .as_ref()
        .cloned()
        .unwrap_or_else(|_| Duties::standby());
    let state = ReplicaState {
        replica: Some(ha.replica_id.clone()),
        mode: Some(ha.mode),
        role: role_of(&duties),
        targets: shard_targets(ha.mode, &duties),
        renewed_at: granted.is_ok().then_some(now),
        failover: Some(ha.failover),
    };
    (state, duties)
}

impl Service {
    /// Renewals and takeover attempts come three times per failover bound.
    pub(super) fn renew_every(&self) -> Duration {
        let failover = self
            .replica
            .borrow()
            .failover
            .unwrap_or(Duration::from_secs(15));
        failover / 3
    }

    /// One renewal: works out this replica's duties now and, when they changed, starts a
    /// daemon that does them.
    pub(super) async fn renew(&mut self, running: &mut Running) {
        let (Some(lease), Some(ha)) = (self.lease.as_mut(), self.loaded.0.ha.clone()) else {
            return;
        };
        let now = self.clock.now();
        let current = if self.idle {
            Duties::standby()
        } else {
            self.current.borrow().duties().clone()
        };
        let store = self.current.borrow().store().clone();
        let granted = assign(lease, &store, ha.mode, &target_names(&self.loaded.0), now).await;
        let lost = granted.is_err();
        let duties = match granted {
            Ok(duties) => {
                if self.lease_failing {
                    info!("The lease answers again.");
                    self.lease_failing = false;
                }
                self.replica
                    .send_modify(|state| state.renewed_at = Some(now));
                duties
            }
            Err(lease_error) => {
                if current.lead || current.targets.as_ref().is_none_or(|t| !t.is_empty()) {
                    error!(error = %lease_error, "Lost the lease; stopping polling at once.");
                } else if !self.lease_failing {
                    warn!(error = %lease_error, "Cannot reach the lease; standing by.");
                }
                self.lease_failing = true;
                Duties::standby()
            }
        };
        if duties == current && !self.idle {
            if duties.lead || !duties.targets.as_ref().is_some_and(BTreeSet::is_empty) {
                return;
            }
            self.standby_renewals += 1;
            if self.standby_renewals < 3 {
                return;
            }
            // A standby re-reads the shared state once per failover bound, so its API
            // answers (alerts, recommendations) follow the leader's.
        }
        if duties.lead && !current.lead {
            info!("This replica leads now: resuming the shared state.");
        }
        if let Some(owned) = &duties.targets
            && ha.mode == HaMode::Shard
            && duties.targets != current.targets
        {
            info!(targets = ?owned, "This replica's share of the targets changed.");
        }
        let released: Vec<String> = match (&current.targets, &duties.targets) {
            (Some(before), Some(after)) => before.difference(after).cloned().collect(),
            _ => Vec::new(),
        };
        if let Err(message) = self.switch(running, duties.clone(), lost).await {
            error!(error = %message, "Cannot take up the new duties; standing by.");
        }
        if let Some(lease) = self.lease.as_mut() {
            // Only now that the old daemon has stopped polling them.
            lease.release_targets(&released).await;
            let leads_now = !self.idle && self.current.borrow().duties().lead;
            if duties.lead && !leads_now {
                // Granted the lead but unable to take it up: let another replica lead.
                lease.release().await;
            }
        }
    }

    /// Stops the current daemon and starts one with `duties` from the loaded config. A
    /// replica that lost its lease is cut short rather than waited for.
    async fn switch(
        &mut self,
        running: &mut Running,
        duties: Duties,
        abort: bool,
    ) -> Result<(), String> {
        let previous = std::mem::replace(running, Running::finished());
        if abort {
            previous.abort().await;
        } else {
            previous.stop().await;
        }
        self.standby_renewals = 0;
        let store = self.current.borrow().store().clone();
        let (config, rules) = self.loaded.clone();
        let clock = self.clock.clone();
        let mut result = Ok(());
        let mut started = Daemon::start_with_duties(
            store.clone(),
            config.clone(),
            rules.clone(),
            clock.clone(),
            duties.clone(),
        )
        .await;
        if let Err(start_error) = &started {
            result = Err(format!("the daemon could not start: {start_error}"));
            started =
                Daemon::start_with_duties(store, config, rules, clock, Duties::standby()).await;
        }
        match started {
            Ok(daemon) => {
                self.idle = false;
                let duties = daemon.duties().clone();
                let mode = self.loaded.0.ha.as_ref().map(|ha| ha.mode);
                self.current.send_replace(Arc::new((self.prepare)(daemon)));
                self.replica.send_modify(|state| {
                    state.role = role_of(&duties);
                    state.targets = mode.and_then(|mode| shard_targets(mode, &duties));
                });
                *running = self.spawn_current();
            }
            Err(standby_error) => {
                // Not even a standby can start (the database is gone): poll nothing, keep
                // serving what the API can, and try again at the next renewal.
                self.replica.send_modify(|state| {
                    state.role = Role::Standby;
                    state.targets = None;
                });
                self.idle = true;
                *running = Running::idle();
                result = Err(format!(
                    "{}; nor as a standby: {standby_error}",
                    result.err().unwrap_or_default()
                ));
            }
        }
        result
    }
}

/// Renews the lease and works out the duties it grants.
async fn assign(
    lease: &mut Lease,
    store: &Store,
    mode: HaMode,
    targets: &[String],
    now: Timestamp,
) -> Result<Duties, StoreError> {
    let leads = lease.renew(now).await?;
    // The live replicas, read once: the leader frees the delivery claims of replicas
    // that are gone, and in shard mode they decide this replica's share.
    let live = if leads || mode == HaMode::Shard {
        lease.live_replicas().await?
    } else {
        Vec::new()
    };
    if leads {
        // Rows claimed by replicas that died mid-send go out again now, not when their
        // claims run out.
        let freed = store
            .release_claims(|claimant| !live.iter().any(|replica| replica == claimant))
            .await?;
        if freed > 0 {
            info!(
                freed,
                "Released the delivery claims of replicas that are gone."
            );
        }
    }
    match mode {
        HaMode::Leader if leads => Ok(Duties::all()),
        HaMode::Leader => Ok(Duties::standby()),
        HaMode::Shard => {
            let share = crate::shard::share_of(lease.replica(), targets, &live);
            let owned = lease.hold_targets(&share).await?;
            Ok(Duties {
                targets: Some(owned),
                lead: leads,
            })
        }
    }
}

fn target_names(config: &Config) -> Vec<String> {
    config
        .targets
        .iter()
        .map(|target| target.name.clone())
        .collect()
}

fn role_of(duties: &Duties) -> Role {
    if duties.lead {
        Role::Leader
    } else {
        Role::Standby
    }
}

fn shard_targets(mode: HaMode, duties: &Duties) -> Option<BTreeSet<String>> {
    match mode {
        HaMode::Shard => duties.targets.clone(),
        HaMode::Leader => None,
    }
}
