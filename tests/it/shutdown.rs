//! `vastwatch run` stops cleanly on SIGTERM and SIGINT while a poll and a delivery are in
//! flight: writes finish, the database is consistent, the notification waits in the outbox,
//! and the exit code is 0 within 10 s.

use std::process::Command;
use std::time::{Duration, Instant};

use sqlx::Row;
use vastwatch::clock::Clock;

use crate::helpers::*;
use crate::receiver::{Answer, Receiver};

#[tokio::test(flavor = "multi_thread")]
async fn run_exits_0_soon_after_a_signal_with_its_writes_complete() {
    for signal in ["-TERM", "-INT"] {
        let clock = Clock::real();
        let scenario = "name: s\nfleets:\n  - endpoint: 1\n    load: 10\n    workers: [{id: 1, perf: 100}]\n  - endpoint: 2\n    load: 10\n    workers: [{id: 2, perf: 100}]\n    faults: [{at: 0s, for: 1h, kind: timeout, hold: 1h}]\n";
        let simulator = start_simulator(scenario, &clock, TEST_KEY).await;
        let dir = tempfile::TempDir::new().expect("temp dir");
        let targets = "  - name: fast\n    endpoint: 1\n  - name: hung\n    endpoint: 2\n";
        // The receiver never answers, so a delivery is in flight when the signal comes.
        let hung = Receiver::start().await;
        hung.answer(Answer::Hang);
        std::fs::write(
            dir.path().join("rules.yaml"),
            "rules:\n  - alert: Up\n    scope: fleet\n    expr: workers > 0\n",
        )
        .expect("rules");
        let notify = format!(
            "rules: [rules.yaml]\nnotify:\n  group_wait: 0s\n  receivers:\n    - name: hung\n      webhook: {{url: \"{}\", timeout: 1h}}\n",
            hung.url()
        );
        let config = write_config(
            dir.path(),
            &simulator.base_url(),
            "  timeout: 1h\n",
            targets,
            &notify,
        );
        poll_every_second(&config);
        let child = spawn_run(&config);
        let database = dir.path().join("vastwatch.db");
        assert!(
            wait_until(Duration::from_secs(30), || async {
                count_polls(&database).await >= 2 && !hung.received().is_empty()
            })
            .await,
            "the daemon stored no polls or sent nothing"
        );
        // A poll of `hung` and a delivery are in flight now and will never end by
        // themselves.
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
            took < Duration::from_secs(10),
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
        // The unanswered notification is still queued for the next start.
        let pending: i64 =
            sqlx::query("SELECT count(*) FROM notifications WHERE status = 'pending'")
                .fetch_one(&pool)
                .await
                .expect("count")
                .get(0);
        assert!(pending >= 1, "the notification in flight stays pending");
        pool.close().await;
        // The write-ahead log was folded back in on close.
        let wal = dir.path().join("vastwatch.db-wal");
        assert!(!wal.exists() || std::fs::metadata(&wal).expect("wal").len() == 0);
        simulator.shutdown().await.expect("shutdown");
    }
}
