//! The status page and `vastwatch report` in headless Chromium (Debian's `chromium`
//! package): the page loads from a daemon that polled the simulator, draws both charts
//! with data, lists a known alert and the workers, logs nothing to the console, and leaves
//! screenshots in `target/test-output/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::api::Api;
use crate::helpers::*;

/// Headless Chromium: `$VASTWATCH_CHROMIUM`, else `chromium` or `chromium-browser` on
/// the PATH. Missing, the test fails saying what to install rather than passing.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("VASTWATCH_CHROMIUM") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
        .expect(
            "these tests need headless Chromium: install Debian's `chromium` package \
             (`apt-get install -y chromium`; .ci/run does) or set VASTWATCH_CHROMIUM",
        )
}

/// Where screenshots go: `target/test-output/`.
fn output_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target folder")
        .join("test-output");
    std::fs::create_dir_all(&dir).expect("test output folder");
    dir
}

/// What one headless run printed: the DOM (with `--dump-dom`) and Chromium's log, which
/// carries every console message as an `INFO:CONSOLE` line.
struct Visit {
    dom: String,
    log: String,
}

/// Loads `url` in a fresh profile, lets the page run for 15 s of virtual time (which
/// waits for its requests), then dumps the DOM or takes a screenshot, per `action`.
async fn visit(url: &str, action: &str) -> Visit {
    let url = url.to_string();
    let action = action.to_string();
    // Blocking on the test's runtime would stall the API server it talks to.
    tokio::task::spawn_blocking(move || {
        let profile = tempfile::TempDir::new().expect("profile folder");
        let output = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--window-size=1440,1600",
                "--virtual-time-budget=15000",
                "--enable-logging=stderr",
                "--v=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(&action)
            .arg(&url)
            .output()
            .expect("chromium runs");
        Visit {
            dom: String::from_utf8_lossy(&output.stdout).into_owned(),
            log: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    })
    .await
    .expect("the browser task")
}

/// The console messages in a Chromium log. The page logs nothing when all is well, so
/// any message is an error, a failed request or an uncaught exception.
fn console_messages(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|line| line.contains(":CONSOLE"))
        .collect()
}

/// The number in `data-points="N"` of the chart with this id.
fn chart_points(dom: &str, id: &str) -> usize {
    let start = dom
        .find(&format!("id=\"{id}\" data-points=\""))
        .unwrap_or_else(|| panic!("chart `{id}` was not drawn: {dom}"));
    dom[start..]
        .split('"')
        .nth(3)
        .and_then(|n| n.parse().ok())
        .expect("a point count")
}

/// Checks a rendered status page of target `t` from the API harness's scenario.
fn assert_rendered(visit: &Visit) {
    let dom = &visit.dom;
    assert!(
        console_messages(&visit.log).is_empty(),
        "the browser console shows messages:\n{}",
        console_messages(&visit.log).join("\n")
    );
    assert!(dom.contains("data-rendered=\"t\""), "not rendered: {dom}");
    for chart in ["chart-load", "chart-states"] {
        let points = chart_points(dom, chart);
        assert!(points >= 10, "{chart} drew {points} points");
    }
    assert!(
        dom.matches("class=\"uplot").count() >= 2,
        "two uPlot charts"
    );
    assert!(dom.matches("<canvas").count() >= 2, "two canvases");
    assert!(
        dom.contains("data-alertname=\"Unreliable\""),
        "the firing alert is listed: {dom}"
    );
    assert!(dom.contains("worker 101"), "the alert names its worker");
    for worker in ["101", "102"] {
        assert!(
            dom.contains(&format!("data-worker=\"{worker}\"")),
            "worker {worker} is in the table"
        );
    }
    assert!(
        dom.contains("id=\"recommendation-action\""),
        "a recommendation"
    );
}

#[tokio::test]
async fn the_status_page_draws_the_charts_alerts_and_workers_in_chromium() {
    let api = Api::spawn(false).await;
    api.run(0, 170).await;
    let url = format!("{}/?target=t&range=1h", api.base);
    let visit_dom = visit(&url, "--dump-dom").await;
    assert_rendered(&visit_dom);

    let screenshot = output_dir().join("status-page.png");
    let _ = std::fs::remove_file(&screenshot);
    let shot = visit(&url, &format!("--screenshot={}", screenshot.display())).await;
    assert!(console_messages(&shot.log).is_empty(), "{}", shot.log);
    let size = std::fs::metadata(&screenshot).expect("a screenshot").len();
    assert!(size > 20_000, "the screenshot is {size} bytes");
}

#[tokio::test]
async fn a_report_is_one_file_that_renders_without_a_server() {
    let api = Api::spawn(false).await;
    api.run(0, 170).await;
    let config = api.dir.path().join("vastwatch.yaml");
    let out = output_dir().join("status-report.html");
    let _ = std::fs::remove_file(&out);
    let (since, until) = (at(secs(0)).to_rfc3339(), at(secs(170)).to_rfc3339());
    let (code, stdout, stderr) = run(&mut vastwatch(&[
        "report",
        "--config",
        config.to_str().unwrap(),
        "--target",
        "t",
        "--since",
        &since,
        "--until",
        &until,
        "--out",
        out.to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("status-report.html"), "{stdout}");
    let html = std::fs::read_to_string(&out).expect("the report exists");
    assert!(html.contains("window.VASTWATCH_REPORT = {"), "data inlined");
    assert!(
        html.contains("\"alertname\":\"Unreliable\""),
        "alerts inlined"
    );
    assert!(html.contains("\"worker_id\":\"102\""), "workers inlined");
    let external = regex::Regex::new(r#"(?i)(src|href)\s*=\s*["']?\s*(https?:)?//"#).unwrap();
    assert!(
        !external.is_match(&html),
        "an external URL: {:?}",
        external.find(&html)
    );
    assert!(!html.contains("src=\"assets/"), "assets inlined");

    let (code, _, stderr) = run(&mut vastwatch(&[
        "report",
        "--config",
        config.to_str().unwrap(),
        "--target",
        "nope",
    ]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--target: `nope` is not a target"),
        "{stderr}"
    );

    // Opened from disk, with the server gone, it still draws everything.
    drop(api);
    let visit_dom = visit(&format!("file://{}", out.display()), "--dump-dom").await;
    assert_rendered(&visit_dom);
    assert!(
        visit_dom
            .dom
            .contains("id=\"ranges\" role=\"group\" aria-label=\"Time range\" hidden"),
        "a report has no range buttons"
    );
    let screenshot = output_dir().join("status-report.png");
    visit(
        &format!("file://{}", out.display()),
        &format!("--screenshot={}", screenshot.display()),
    )
    .await;
    assert!(screenshot.exists());
}

#[tokio::test]
async fn with_a_token_configured_the_page_asks_for_it_before_showing_data() {
    let api = Api::spawn(true).await;
    api.run(0, 10).await;
    let visit = visit(&format!("{}/", api.base), "--dump-dom").await;
    let dom = &visit.dom;
    assert!(
        dom.contains("<dialog id=\"token-dialog\" open=\"\">"),
        "the token dialog is open: {dom}"
    );
    assert!(!dom.contains("data-rendered"), "no data without the token");
}
