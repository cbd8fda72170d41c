//! `vastwatch run` stops cleanly on SIGTERM and SIGINT: in-flight writes finish, the
//! database is consistent, and the exit code is 0.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::Row;
use vastwatch::clock::Clock;

use crate::helpers::*;

async fn count_polls(database: &std::path::Path) -> i64 {
    if !database.exists() {
        return 0;
    }
    let pool = open_database(database).await;
    let count = sqlx::query("SELECT count(*) AS n FROM polls")
        .fetch_one(&pool)
        .await
        .map(|row| row.get::<i64, _>("n"))
        .unwrap_or(0);
    pool.close().await;
    count
}

#[tokio::test(flavor = "multi_thread")]
async fn run_exits_0_soon_after_a_signal_with_its_writes_complete() {
    for signal in ["-TERM", "-INT"] {
        let clock = Clock::real();
        let scenario = "name: s\nfleets:\n  - endpoint: 1\n    load: 10\n    workers: [{id: 1, perf: 100}]\n  - endpoint: 2\n    load: 10\n    workers: [{id: 2, perf: 100}]\n    faults: [{at: 0s, for: 1h, kind: timeout, hold: 1h}]\n";
        let simulator = start_simulator(scenario, &clock, TEST_KEY).await;
        let dir = tempfile::TempDir::new().expect("temp dir");
        let targets = "  - name: fast\n    endpoint: 1\n  - name: hung\n    endpoint: 2\n";
        let config = write_config(
            dir.path(),
            &simulator.base_url(),
            "  timeout: 1h\n",
            targets,
            "",
        );
        let yaml = std::fs::read_to_string(&config)
            .expect("read")
            .replace("schedule: 10s", "schedule: 1s");
        std::fs::write(&config, yaml).expect("write");

        let child = Command::new(env!("CARGO_BIN_EXE_vastwatch"))
            .args(["run", "--config", config.to_str().expect("utf-8")])
            .env("TEST_VAST_KEY", TEST_KEY)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vastwatch run");
        let database = dir.path().join("vastwatch.db");
        assert!(
            wait_until(Duration::from_secs(30), || async {
                count_polls(&database).await >= 2
            })
            .await,
            "the daemon stored no polls"
        );
        // A poll of `hung` is in flight now and will never answer by itself.
        let signalled = Instant::now();
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let output = child.wait_with_output().expect("wait");
        let took = signalled.elapsed();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{signal}: {stderr}");
        assert!(
            took < Duration::from_secs(8),
            "{signal}: shutdown took {took:?}"
        );
        assert!(stderr.contains("Stopped."), "{stderr}");

        let pool = open_database(&database).await;
        let integrity: String = sqlx::query("PRAGMA integrity_check")
            .fetch_one(&pool)
            .await
            .expect("integrity")
            .get(0);
        assert_eq!(integrity, "ok");
        let fast: i64 = sqlx::query("SELECT count(*) FROM polls p JOIN targets t ON t.id = p.target_id WHERE t.name = 'fast' AND outcome = 'ok'")
            .fetch_one(&pool)
            .await
            .expect("count")
            .get(0);
        assert!(fast >= 1);
        pool.close().await;
        // The write-ahead log was folded back in on close.
        let wal = dir.path().join("vastwatch.db-wal");
        assert!(!wal.exists() || std::fs::metadata(&wal).expect("wal").len() == 0);
        simulator.shutdown().await.expect("shutdown");
    }
}
