//! Replicas: two `cd-host` processes — two replicas of every component — on one libSQL server
//! (`sqld`), named in a Spin runtime-config file as a SpinKube deployment names it, driven like
//! a fleet of pipelines. Runs in both runs of the suite (it needs no file either way).
//!
//! The host binary is the one `cargo test --workspace` builds beside this test (tests/run
//! builds it first); the replicas are real processes so that killing one is a real kill.

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, RequestBuilder, TestResponse, cd_request, manifest};
use crate::sqld::Sqld;

/// One `cd-host` process serving every component, killed on drop.
struct Replica {
    child: Child,
    addr: SocketAddr,
    /// The host's stderr (guest output, logged 5xx causes), printed if the test fails.
    log: tempfile::NamedTempFile,
}

impl Replica {
    /// A replica of the components named (all of them when none is), as `spin up -c`.
    fn start(runtime_config: &std::path::Path, components: &[&str]) -> Replica {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut command = Command::new(host_binary());
        for component in components {
            command.arg("--component-id").arg(component);
        }
        let mut child = command
            .arg("--manifest")
            .arg(manifest())
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--runtime-config-file")
            .arg(runtime_config)
            .arg("--variable")
            .arg(format!("admin_token={ADMIN_TOKEN}"))
            .stdout(Stdio::piped())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("cd-host starts");
        // Its first line on stdout names the address it bound; the rest is drained, so the
        // host never writes into a closed pipe.
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let addr = line
            .trim()
            .strip_prefix("Serving http://")
            .unwrap_or_else(|| panic!("cd-host said {line:?}"))
            .parse()
            .unwrap();
        Replica { child, addr, log }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.log.path()).unwrap_or_default();
            eprintln!("--- replica {} said ---\n{log}", self.addr);
        }
    }
}

fn host_binary() -> std::path::PathBuf {
    // target/<profile>/deps/api-… → target/<profile>/cd-host
    let exe = std::env::current_exe().unwrap();
    let binary = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join(format!("cd-host{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "no cd-host binary at {} (run `cargo build -p cd-host` or tests/run)",
        binary.display()
    );
    binary
}

/// The fleet: one sqld, `n` replicas on it, and a runtime for the clients.
struct Fleet {
    replicas: Vec<Replica>,
    runtime: tokio::runtime::Runtime,
    _sqld: Sqld,
}

impl Fleet {
    /// `n` replicas of every component; `None` (said loudly) where no sqld is installed.
    fn start(n: usize) -> Option<Fleet> {
        Fleet::of(&vec![&[][..]; n])
    }

    /// One replica per entry, each serving the components it names (all when none).
    fn of(replicas: &[&[&str]]) -> Option<Fleet> {
        let sqld = Sqld::start_or_skip("the replica tests")?;
        let config = sqld.runtime_config();
        let replicas = replicas
            .iter()
            .map(|components| Replica::start(&config, components))
            .collect();
        Some(Fleet {
            replicas,
            runtime: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
            _sqld: sqld,
        })
    }

    /// A request to replica `i` (modulo the fleet's size).
    fn request(&self, i: usize, method: &str, path: &str) -> RequestBuilder<'_> {
        let addr = self.replicas[i % self.replicas.len()].addr;
        RequestBuilder::new(&self.runtime, addr, method, path)
    }

    fn post(&self, i: usize, path: &str, body: &Value, token: &str) -> TestResponse {
        retrying(path, || {
            self.request(i, "POST", path)
                .json(body)
                .bearer(token)
                .send()
        })
    }

    fn get(&self, i: usize, path: &str, token: &str) -> TestResponse {
        retrying(path, || self.request(i, "GET", path).bearer(token).send())
    }
}

/// Sends as a pipeline does (`curl --retry`): a 503 is retried a second later (its
/// `Retry-After`), a few times. A replica may meet the write lock of a stream that another
/// replica left open until the server takes it back, or a server busy with the parallel test
/// run's other fleets; that is a 503 to retry, not a failure.
fn retrying(path: &str, send: impl Fn() -> TestResponse) -> TestResponse {
    let mut response = send();
    for _ in 0..5 {
        if response.status != 503 {
            break;
        }
        eprintln!("replicas: {path}: 503, retried: {}", response.text());
        std::thread::sleep(Duration::from_secs(1));
        response = send();
    }
    response
}

/// Mints an org token through replica 0 and creates a registry through replica
/// `registry_via`; returns (token, images path).
fn org_and_registry(fleet: &Fleet, registry_via: usize) -> (String, String) {
    let minted = fleet.post(
        0,
        "/api/v1/tokens",
        &json!({"org_id": "acme", "role": "admin", "name": "fleet"}),
        ADMIN_TOKEN,
    );
    minted.assert_status(201);
    let token = minted.json()["token"].as_str().unwrap().to_owned();
    let registry = fleet.post(
        registry_via,
        "/api/v1/registries",
        &json!({"image_repository_name": "app", "container_registry_id": "ghcr"}),
        &token,
    );
    registry.assert_status(201);
    let images = format!(
        "/api/v1/registries/{}/images",
        registry.json()["registry_id"].as_str().unwrap()
    );
    (token, images)
}

#[test]
fn sixteen_pipelines_across_two_replicas_get_consecutive_versions_and_retries_on_the_other_replica_are_idempotent()
 {
    const PIPELINES: usize = 16;
    let Some(fleet) = Fleet::start(2) else { return };
    let fleet = Arc::new(fleet);
    // Both replicas' first requests race to migrate the empty server: one schema results.
    let racers: Vec<_> = ["registry", "images", "lead-time"]
        .into_iter()
        .enumerate()
        .flat_map(|(c, component)| (0..2).map(move |r| (c + r, component)))
        .map(|(i, component)| {
            let fleet = Arc::clone(&fleet);
            std::thread::spawn(move || {
                let path = format!("/api/v1/health/{component}");
                retrying(&path, || fleet.request(i, "GET", &path).send()).status
            })
        })
        .collect();
    for racer in racers {
        assert_eq!(racer.join().unwrap(), 200, "a racing first request");
    }
    let (token, images) = org_and_registry(&fleet, 1);

    let handles: Vec<_> = (0..PIPELINES)
        .map(|i| {
            let (fleet, token, images) = (Arc::clone(&fleet), token.clone(), images.clone());
            std::thread::spawn(move || {
                let run_id = format!("run-{i}");
                let first = fleet.post(i, &images, &cd_request(&run_id), &token);
                first.assert_status(201);
                // The pipeline's retry lands on the other replica.
                let retry = fleet.post(i + 1, &images, &cd_request(&run_id), &token);
                retry.assert_status(200);
                assert_eq!(retry.json(), first.json(), "{run_id}: the retry's answer");
                first.json()["version"].as_str().unwrap().to_owned()
            })
        })
        .collect();
    let mut patches: Vec<u64> = handles
        .into_iter()
        .map(|h| {
            let version = h.join().unwrap();
            version.rsplit('.').next().unwrap().parse().unwrap()
        })
        .collect();
    patches.sort();
    assert_eq!(
        patches,
        (1..=PIPELINES as u64).collect::<Vec<_>>(),
        "distinct, consecutive versions"
    );
    // Either replica reads the channel where the fleet left it.
    for i in 0..2 {
        let channel = fleet.get(i, &images.replace("/images", "/channels/default"), &token);
        channel.assert_status(200);
        assert_eq!(
            channel.json()["version"],
            format!("default-0.0.{PIPELINES}")
        );
    }

    // Deployments recorded through both replicas; DORA read from either agrees.
    let listed = fleet.get(0, &format!("{images}?limit=500"), &token);
    let image_ids: Vec<String> = listed.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|image| image["image_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(image_ids.len(), PIPELINES);
    for (i, image_id) in image_ids.iter().enumerate() {
        let deployment = json!({
            "image_id": image_id, "project_id": "shop", "app_id": format!("app-{}", i % 3),
            "environment": "production", "prod": true, "deployment_id": format!("deploy-{i}"),
            "deployed_at": format!("2026-03-{:02}T12:00:00Z", 3 + i),
        });
        let first = fleet.post(i, "/api/v1/deployments", &deployment, &token);
        first.assert_status(201);
        let retry = fleet.post(i + 1, "/api/v1/deployments", &deployment, &token);
        retry.assert_status(200);
    }
    let range = "start=2026-03-01T00:00:00Z&end=2026-03-31T23:59:59Z&interval=week";
    for path in [
        "/api/v1/dora/lead-time",
        "/api/v1/dora/deployment-frequency",
    ] {
        let path = format!("{path}?{range}");
        let (a, b) = (fleet.get(0, &path, &token), fleet.get(1, &path, &token));
        a.assert_status(200);
        b.assert_status(200);
        assert_eq!(a.json(), b.json(), "{path}: both replicas answer alike");
    }
    let summary = fleet.get(
        1,
        &format!("/api/v1/dora/lead-time?{range}&unit=deployment"),
        &token,
    );
    assert_eq!(summary.json()["summary"]["count"], PIPELINES);
}

#[test]
fn killing_a_replica_mid_write_loses_nothing_it_acknowledged() {
    let Some(fleet) = Fleet::start(2) else { return };
    let (token, images) = org_and_registry(&fleet, 1);
    let fleet = Arc::new(std::sync::Mutex::new(fleet));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let runtime = Arc::new(runtime);
    let doomed = fleet.lock().unwrap().replicas[0].addr;

    // Four pipelines write to the doomed replica as fast as it answers; each keeps the runs it
    // was told were recorded, and stops at the first request that finds the replica gone.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (runtime, token, images) = (Arc::clone(&runtime), token.clone(), images.clone());
            std::thread::spawn(move || {
                let mut acknowledged = Vec::new();
                let mut n = 0;
                loop {
                    let run_id = format!("w{w}-{n}");
                    let sent = RequestBuilder::new(&runtime, doomed, "POST", &images)
                        .json(&cd_request(&run_id))
                        .bearer(&token)
                        .try_send();
                    match sent {
                        Ok(response) if response.status == 201 => {
                            acknowledged.push((run_id, response.json()));
                            n += 1;
                        }
                        // Busy: the same run again, as a pipeline retries.
                        Ok(response) if response.status == 503 => {}
                        Ok(response) => panic!("{run_id}: {} {}", response.status, response.text()),
                        Err(_) => break,
                    }
                }
                acknowledged
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    fleet.lock().unwrap().replicas[0].kill();
    let killed_after = started.elapsed();
    let acknowledged: Vec<(String, Value)> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(
        acknowledged.len() >= 4,
        "the writers got going before the kill ({} in {killed_after:?})",
        acknowledged.len()
    );

    // The survivor has every acknowledged image, exactly as acknowledged, and keeps writing.
    let fleet = fleet.lock().unwrap();
    for (run_id, image) in &acknowledged {
        let path = format!("{images}/{}", image["image_id"].as_str().unwrap());
        let stored = fleet.get(1, &path, &token);
        stored.assert_status(200);
        assert_eq!(&stored.json(), image, "{run_id} as acknowledged");
    }
    let after = fleet.post(1, &images, &cd_request("after-the-kill"), &token);
    after.assert_status(201);
    // Nothing half-written: every recorded image took exactly one version, with no gap, the
    // one the survivor just recorded included (an unacknowledged write is whole or absent).
    let listed = fleet.get(1, &format!("{images}?limit=500"), &token);
    let recorded = listed.json()["items"].as_array().unwrap().len();
    assert!(recorded > acknowledged.len(), "{recorded} recorded");
    assert_eq!(
        after.json()["version"],
        format!("default-0.0.{recorded}"),
        "one version per recorded image"
    );
    eprintln!(
        "replicas: {} writes acknowledged in {killed_after:?} before the kill, {recorded} recorded",
        acknowledged.len()
    );
}

#[test]
fn each_component_scaled_on_its_own_serves_its_routes_from_the_shared_database() {
    // As SpinKube runs it: one deployment of the registry and lead-time components, another
    // of the images component alone, all on one server.
    let Some(fleet) = Fleet::of(&[&["registry", "lead-time"], &["images"]]) else {
        return;
    };
    let (token, images) = org_and_registry(&fleet, 0);
    // Only the images replica records images; the other has no such component (its
    // registry component, whose routes include `/registries/...`, knows no such route).
    let recorded = fleet.post(1, &images, &cd_request("run-1"), &token);
    recorded.assert_status(201);
    fleet
        .post(0, &images, &cd_request("run-2"), &token)
        .assert_status(404);
    // The images replica serves no token, registry or DORA route: Spin's empty 404.
    for path in [
        "/api/v1/tokens",
        "/api/v1/health/registry",
        "/api/v1/dora/lead-time",
    ] {
        let answer = fleet.get(1, path, &token);
        assert_eq!((answer.status, answer.body.len()), (404, 0), "{path}");
    }
    // What one recorded, the other's components read.
    let image_id = recorded.json()["image_id"].as_str().unwrap().to_owned();
    let deployment = json!({
        "image_id": image_id, "project_id": "shop", "app_id": "checkout",
        "environment": "production", "prod": true, "deployment_id": "deploy-1",
    });
    fleet
        .post(0, "/api/v1/deployments", &deployment, &token)
        .assert_status(201);
    let channel = fleet.get(0, &images.replace("/images", "/channels/default"), &token);
    assert_eq!(channel.json()["version"], "default-0.0.1");
}
