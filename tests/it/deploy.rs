//! Static checks of the deployment files, since Docker, Kubernetes and systemd cannot run
//! here: the example configs pass `vastwatch check`, every file a manifest mounts or
//! copies exists, probes and scrapes point at the port vastwatch listens on, and the
//! Dockerfile and systemd unit keep their hardening.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo().join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn yaml(text: &str, name: &str) -> Value {
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Runs `vastwatch check --strict` on `config` text saved in a fresh folder that also
/// holds the shipped rules under `rules/`, as the image lays them out.
fn check(config: &str) -> (bool, String) {
    let dir = tempfile::TempDir::new().expect("temp dir");
    std::fs::create_dir(dir.path().join("rules")).expect("rules dir");
    std::fs::copy(
        repo().join("rules/vast.yaml"),
        dir.path().join("rules/vast.yaml"),
    )
    .expect("copy rules");
    let path = dir.path().join("vastwatch.yaml");
    std::fs::write(&path, config).expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_vastwatch"))
        .args(["check", "--config", path.to_str().expect("utf-8")])
        .env("VAST_API_KEY", "deploy-test-key")
        .env("VASTWATCH_TOKEN", "deploy-test-token")
        .output()
        .expect("run check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The port of a `listen: host:port` line in a config.
fn listen_port(config: &str) -> u16 {
    let config = yaml(config, "config");
    let listen = config["listen"].as_str().expect("listen is set");
    listen
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .expect("listen has a port")
}

#[test]
fn the_example_configs_pass_check() {
    let deploy = read("deploy/vastwatch.yaml");
    let (ok, output) = check(&deploy);
    assert!(ok, "deploy/vastwatch.yaml: {output}");
    // Published in a container, so it listens on every address and must carry a token.
    assert_eq!(
        yaml(&deploy, "deploy")["listen_token_env"],
        "VASTWATCH_TOKEN"
    );

    let kubernetes = kubernetes_documents();
    let config_map = find_kind(&kubernetes, "ConfigMap");
    let embedded = config_map["data"]["vastwatch.yaml"]
        .as_str()
        .expect("the ConfigMap carries vastwatch.yaml");
    let (ok, output) = check(embedded);
    assert!(ok, "the ConfigMap's vastwatch.yaml: {output}");
}

fn kubernetes_documents() -> Vec<Value> {
    read("deploy/kubernetes.yaml")
        .split("\n---\n")
        .map(|document| yaml(document, "deploy/kubernetes.yaml"))
        .collect()
}

fn find_kind<'a>(documents: &'a [Value], kind: &str) -> &'a Value {
    documents
        .iter()
        .find(|document| document["kind"] == kind)
        .unwrap_or_else(|| panic!("deploy/kubernetes.yaml has no {kind}"))
}

#[test]
fn kubernetes_probes_and_service_reach_the_listen_port() {
    let documents = kubernetes_documents();
    let config_map = find_kind(&documents, "ConfigMap");
    let port = listen_port(
        config_map["data"]["vastwatch.yaml"]
            .as_str()
            .expect("config"),
    );
    let deployment = find_kind(&documents, "Deployment");
    let spec = &deployment["spec"]["template"]["spec"];
    let container = &spec["containers"][0];
    assert_eq!(container["ports"][0]["containerPort"], port);
    assert_eq!(container["ports"][0]["name"], "http");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    // One writer on SQLite: never two pods at once.
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    let claim = find_kind(&documents, "PersistentVolumeClaim");
    let volumes = spec["volumes"].as_array().expect("volumes");
    assert!(volumes.iter().any(|volume| {
        volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    }));
    let mounted_data = container["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .any(|mount| mount["mountPath"] == "/var/lib/vastwatch");
    assert!(mounted_data, "the database folder is on the volume");
    let service = find_kind(&documents, "Service");
    assert_eq!(service["spec"]["ports"][0]["port"], port);
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    // Shutdown takes up to 10 s; the grace period must cover it.
    assert!(
        spec["terminationGracePeriodSeconds"]
            .as_u64()
            .expect("grace")
            > 10
    );
}

#[test]
fn compose_mounts_files_that_exist_and_prometheus_scrapes_vastwatch() {
    let compose = yaml(&read("deploy/docker-compose.yaml"), "docker-compose.yaml");
    let services = compose["services"].as_object().expect("services");
    for name in ["vastwatch", "prometheus", "grafana"] {
        assert!(services.contains_key(name), "compose runs {name}");
    }
    for (name, service) in services {
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let source = volume.as_str().expect("short volume syntax");
            let host = source.split(':').next().expect("source");
            // Named volumes have no slash; generated secrets are written by the operator.
            if host.starts_with("./") && !host.ends_with("vastwatch-token") {
                let path = repo().join("deploy").join(host);
                assert!(path.exists(), "{name} mounts {host}, which is missing");
            }
        }
    }
    let port = listen_port(&read("deploy/vastwatch.yaml"));
    let prometheus = yaml(&read("deploy/prometheus.yml"), "prometheus.yml");
    let scrape = &prometheus["scrape_configs"][0];
    assert_eq!(
        scrape["static_configs"][0]["targets"][0],
        format!("vastwatch:{port}")
    );
    assert_eq!(scrape["authorization"]["type"], "Bearer");
}

#[test]
fn the_dockerfile_pins_its_bases_runs_unprivileged_and_checks_itself() {
    let dockerfile = read("Dockerfile");
    let bases: Vec<&str> = dockerfile
        .lines()
        .filter_map(|line| line.strip_prefix("FROM "))
        .map(|rest| rest.split_whitespace().next().expect("image"))
        .collect();
    assert_eq!(bases.len(), 2, "a builder and a runtime stage");
    for base in &bases {
        let tag = base.split(':').nth(1).unwrap_or("");
        let pinned = tag.chars().next().is_some_and(|c| c.is_ascii_digit()) && tag.contains('.');
        assert!(pinned, "{base} is not pinned to a release");
    }
    let user = dockerfile
        .lines()
        .find_map(|line| line.strip_prefix("USER "))
        .expect("a USER line");
    assert!(
        !user.starts_with("root") && !user.starts_with('0'),
        "{user}"
    );
    assert!(dockerfile.contains(r#"CMD ["vastwatch", "health"]"#));
    assert!(dockerfile.contains("HEALTHCHECK"));
    assert!(dockerfile.contains("VOLUME [\"/var/lib/vastwatch\"]"));
    assert!(
        dockerfile.contains("docker run"),
        "an example docker run line"
    );
    // Everything copied from the build context exists.
    for line in dockerfile.lines().filter(|line| line.starts_with("COPY ")) {
        if line.contains("--from=") {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        for source in &parts[1..parts.len() - 1] {
            let pattern = repo().join(source);
            let matched = glob::glob(pattern.to_str().expect("utf-8"))
                .expect("pattern")
                .count();
            assert!(matched > 0, "COPY {source}: nothing there");
        }
    }
    // The image's HEALTHCHECK runs `vastwatch health`, which must exist.
    let help = Command::new(env!("CARGO_BIN_EXE_vastwatch"))
        .args(["health", "--help"])
        .output()
        .expect("run health --help");
    assert!(help.status.success(), "`vastwatch health` exists");
}

#[test]
fn the_systemd_unit_runs_hardened_and_reloads_with_sighup() {
    let unit = read("deploy/vastwatch.service");
    let setting = |key: &str| -> Vec<String> {
        unit.lines()
            .filter_map(|line| line.strip_prefix(&format!("{key}=")))
            .map(str::to_string)
            .collect()
    };
    assert!(setting("ExecStart")[0].ends_with("vastwatch run"));
    assert!(setting("ExecReload")[0].contains("-HUP"));
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("DynamicUser", "yes"),
        ("StateDirectory", "vastwatch"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(setting(key), vec![value.to_string()], "{key}");
    }
    let stop = setting("TimeoutStopSec");
    let seconds: u64 = stop[0].trim_end_matches('s').parse().expect("seconds");
    assert!(seconds > 10, "TimeoutStopSec covers the 10 s shutdown");
    // The unit's config lands where the unit reads it.
    assert!(Path::new(&repo().join("deploy/vastwatch.yaml")).exists());
    assert_eq!(
        setting("Environment")
            .iter()
            .filter(|value| value.starts_with("VASTWATCH_CONFIG=/etc/vastwatch/"))
            .count(),
        1
    );
}
