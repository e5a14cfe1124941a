//! The registries, a registry, an image and the deployments pages show the seeded history:
//! every registry linked, channels with their current versions, images with version, commit
//! and a link to their provenance, the provenance chain and its commits, and a timeline per
//! app environment with its failures and rework marked in words.

use std::collections::BTreeMap;

use serde_json::json;

use crate::browser::Browser;
use crate::history::History;
use crate::site::sign_in;

/// The rows of the table matching `css`, each row's cells' text (`th` and `td`).
const TABLE_ROWS: &str = r#"
return Array.from(document.querySelectorAll(arguments[0] + ' tbody tr'))
  .map(row => Array.from(row.querySelectorAll('th, td')).map(cell => cell.textContent.trim()));
"#;

/// Every `section.timeline`: its app, environment and deployments' classes and text.
const TIMELINES: &str = r#"
return Array.from(document.querySelectorAll('section.timeline')).map(section => ({
  app: section.getAttribute('data-app'),
  environment: section.getAttribute('data-environment'),
  deployments: Array.from(section.querySelectorAll('li.deployment')).map(item => ({
    failed: item.classList.contains('failed'),
    rework: item.classList.contains('rework'),
    text: item.textContent,
    image: item.querySelector('a')?.getAttribute('href') ?? null,
  })),
}));
"#;

#[test]
fn registries_registry_image_and_deployments_pages_show_the_seeded_history() {
    let history = History::post();
    let browser = Browser::open("pages", history.app.host.addr());
    sign_in(&browser, &history.reader);

    browser.goto("/ui/registries");
    browser.screenshot("registries", 1440, false);
    assert!(browser.has("table#registries"), "a table#registries");
    for registry in &history.registries {
        let link = format!(
            "table#registries a[href='/ui/registries/{}']",
            registry.registry_id
        );
        assert!(browser.has(&link), "{} is linked: {link}", registry.name);
        assert!(
            browser.text("table#registries").contains(registry.name),
            "{} is named",
            registry.name
        );
    }

    let web = history.registry("shop/web");
    browser.goto(&format!("/ui/registries/{}", web.registry_id));
    browser.screenshot("registry", 1440, false);
    let channels = history.api(&format!("/api/v1/registries/{}/channels", web.registry_id));
    let channel_rows = browser.script(TABLE_ROWS, &[json!("table#channels")]);
    for channel in channels["items"].as_array().unwrap() {
        let (name, version) = (
            channel["channel"].as_str().unwrap(),
            channel["version"].as_str().unwrap(),
        );
        let shown = channel_rows.as_array().unwrap().iter().any(|row| {
            let row = row.to_string();
            row.contains(name) && row.contains(version)
        });
        assert!(
            shown,
            "channel {name} at {version} in table#channels: {channel_rows}"
        );
    }
    let image_rows = browser.text("table#images");
    for image in history
        .images
        .iter()
        .filter(|i| i.registry_id == web.registry_id)
    {
        assert!(
            image_rows.contains(&image.version),
            "{} in table#images",
            image.version
        );
        assert!(
            image_rows.contains(&image.git_hash[..7]),
            "commit {} in table#images",
            image.git_hash
        );
        let link = format!(
            "table#images a[href='/ui/registries/{}/images/{}']",
            image.registry_id, image.image_id
        );
        assert!(browser.has(&link), "{} links its image page", image.version);
    }
    assert!(
        image_rows.contains("production") && image_rows.contains("staging"),
        "where each image is deployed: {image_rows}"
    );

    // W3: three commits, deployed once (to production), after W2's failed rollout.
    let image = &history.images[3];
    browser.goto(&format!(
        "/ui/registries/{}/images/{}",
        image.registry_id, image.image_id
    ));
    browser.screenshot("image", 1440, false);
    let steps = browser.script(
        "return Array.from(document.querySelectorAll('ol#provenance > li.step'))\
           .map(step => ({text: step.textContent, took: step.querySelector('data.took') !== null}))",
        &[],
    );
    let steps = steps.as_array().unwrap();
    // Commits, build, (push: this image had none), one deployment.
    assert!(
        steps.len() >= 3,
        "commits, build and a deployment: {steps:?}"
    );
    assert!(
        steps.last().unwrap()["text"]
            .as_str()
            .unwrap()
            .contains("production"),
        "the last step is the deployment to production: {steps:?}"
    );
    assert!(
        steps.iter().any(|step| step["took"] == true),
        "steps say how long they took: {steps:?}"
    );
    let commits = browser.text("table#commits");
    let api_image = history.api(&format!(
        "/api/v1/registries/{}/images/{}",
        image.registry_id, image.image_id
    ));
    for commit in api_image["commits"].as_array().unwrap() {
        let sha = commit["sha"].as_str().unwrap();
        assert!(
            commits.contains(&sha[..7]),
            "commit {sha} in table#commits: {commits}"
        );
        let author = commit["author"].as_str().unwrap();
        let name = author.split(" <").next().unwrap();
        assert!(
            commits.contains(name),
            "author {author} in table#commits: {commits}"
        );
    }
    assert!(browser.has("table#deliveries"), "a table#deliveries");

    browser.goto("/ui/deployments");
    browser.screenshot("deployments", 1440, false);
    let timelines = browser.script(TIMELINES, &[]);
    // Each deployment links its image's page (its registry and image, as the API names them).
    let image_pages: Vec<String> = history
        .deployment_records()
        .iter()
        .map(|r| {
            format!(
                "/ui/registries/{}/images/{}",
                r["registry_id"].as_str().unwrap(),
                r["image_id"].as_str().unwrap()
            )
        })
        .collect();
    for timeline in timelines.as_array().unwrap() {
        for deployment in timeline["deployments"].as_array().unwrap() {
            let link = deployment["image"].as_str().unwrap_or("none");
            assert!(
                image_pages.iter().any(|page| page == link),
                "a deployment links an image page of the history: {link}"
            );
        }
    }
    // What each app environment's timeline must show, from the API's records.
    let mut expected: BTreeMap<(String, String), (usize, usize, usize)> = BTreeMap::new();
    for record in history.deployment_records() {
        let key = (
            record["app_id"].as_str().unwrap().to_owned(),
            record["environment"].as_str().unwrap().to_owned(),
        );
        let entry = expected.entry(key).or_default();
        entry.0 += 1;
        entry.1 += usize::from(record["status"] == "failed");
        entry.2 += usize::from(record["kind"] == "rework");
    }
    let mut shown = BTreeMap::new();
    for timeline in timelines.as_array().unwrap() {
        let deployments = timeline["deployments"].as_array().unwrap();
        for deployment in deployments {
            let text = deployment["text"].as_str().unwrap();
            if deployment["failed"] == true {
                assert!(
                    text.contains("failed"),
                    "a failed deployment says so: {text:?}"
                );
            }
            if deployment["rework"] == true {
                assert!(text.contains("rework"), "rework says so: {text:?}");
            }
        }
        let count = |class: &str| deployments.iter().filter(|d| d[class] == true).count();
        shown.insert(
            (
                timeline["app"].as_str().unwrap_or_default().to_owned(),
                timeline["environment"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ),
            (deployments.len(), count("failed"), count("rework")),
        );
    }
    assert_eq!(
        shown, expected,
        "(app, environment) → (deployments, failed, rework) on /ui/deployments"
    );

    // Signed out: a public registry's page still shows, a private one asks to sign in.
    browser.click("form#sign-out button[type=submit]");
    browser.wait_for("form#sign-in");
    for registry in &history.registries {
        browser.goto(&format!("/ui/registries/{}", registry.registry_id));
        let shown = browser.has("table#images") && !browser.has("form#sign-in");
        let asked = browser.has("form#sign-in") && !browser.has("table#images");
        if registry.public {
            assert!(
                shown,
                "public {} shows its images signed out",
                registry.name
            );
            for image in history
                .images
                .iter()
                .filter(|i| i.registry_id == registry.registry_id)
            {
                assert!(browser.text("table#images").contains(&image.version));
            }
            browser.screenshot("public-registry-signed-out", 1440, false);
        } else {
            assert!(asked, "private {} asks to sign in", registry.name);
        }
    }
}

/// The image page of one build as it happens: three commits over the morning, the build now,
/// its push to the registry (a signed generic webhook) right after, the rollout to
/// staging a minute later and to production three minutes later (deployed_at may be up to 5
/// minutes ahead). Its provenance lists the steps in that order, each with the time it took,
/// and the deploy trigger its push raised is among its deliveries; the screenshot is README's.
#[test]
fn an_image_page_shows_its_provenance_in_time_order() {
    use crate::helpers::{TestApp, cd_request};
    use chrono::{Duration, Utc};

    // Deliveries may go to loopback: the subscriber below refuses the connection.
    let app = TestApp::spawn_with(&[("webhook_allowed_hosts", "http://127.0.0.1:*")]);
    let writer = app.token("acme", "write");
    let reader = app.token("acme", "read");
    let registry = app.registry(&writer, "shop/checkout", false);
    let registry_id = registry["registry_id"].as_str().unwrap();
    let now = Utc::now();
    let at = |offset: Duration| crate::history::rfc3339(now + offset);
    let commits: Vec<serde_json::Value> = [("Ann", 190), ("Bo", 95), ("Cy", 42)]
        .iter()
        .enumerate()
        .map(|(k, (author, minutes))| {
            json!({
                "sha": crate::history::sha(&format!("checkout/{k}")),
                "timestamp": at(-Duration::minutes(*minutes)),
                "author": format!("{author} <{}@example.com>", author.to_lowercase()),
            })
        })
        .collect();
    let head = commits.last().unwrap();
    let mut body = cd_request("checkout-run-7");
    body["image_name"] = json!("ghcr.io/acme/shop/checkout");
    body["image_name_with_tag"] = json!("ghcr.io/acme/shop/checkout:checkout-run-7");
    body["git_hash"] = head["sha"].clone();
    body["git_hash_commit_timestamp"] = head["timestamp"].clone();
    body["committer"] = head["author"].clone();
    body["commit_msg"] =
        json!("Pay with saved cards\n\nThe checkout offers the cards a customer saved.");
    body["commits"] = json!(commits);
    let image = app
        .post(&format!("/api/v1/registries/{registry_id}/images"), &body)
        .bearer(&writer)
        .send();
    image.assert_status(201);
    let image_id = image.json()["image_id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/api/v1/registries/{registry_id}/subscriptions"),
        &json!({"url": "http://127.0.0.1:9/deploy", "events": ["image.pushed"]}),
    )
    .bearer(&writer)
    .send()
    .assert_status(201);
    let receiver = app
        .post(
            &format!("/api/v1/registries/{registry_id}/receivers"),
            &json!({"source": "generic"}),
        )
        .bearer(&writer)
        .send();
    receiver.assert_status(201);
    let receiver = receiver.json();
    let push = serde_json::to_vec(&json!({
        "repository": "ghcr.io/acme/shop/checkout",
        "tag": "checkout-run-7",
        "digest": format!("sha256:{}", "c0ffee".repeat(10) + "c0ff"),
    }))
    .unwrap();
    let id = "msg_checkout_run_7";
    let sent_at = Utc::now().timestamp();
    let signature = standardwebhooks::Webhook::new(receiver["secret"].as_str().unwrap())
        .unwrap()
        .sign(id, sent_at, &push)
        .unwrap();
    let pushed = app
        .request(
            "POST",
            &format!(
                "/api/v1/hooks/{}",
                receiver["receiver_id"].as_str().unwrap()
            ),
        )
        .header("webhook-id", id)
        .header("webhook-timestamp", &sent_at.to_string())
        .header("webhook-signature", &signature)
        .raw("application/json", push)
        .send();
    pushed.assert_status(200);
    assert_eq!(pushed.json()["pushes"][0]["outcome"], "attached");
    for (environment, prod, start, finish) in
        [("staging", false, 20, 75), ("production", true, 120, 200)]
    {
        app.post(
            "/api/v1/deployments",
            &json!({
                "image_id": image_id,
                "project_id": "shop",
                "app_id": "checkout",
                "environment": environment,
                "prod": prod,
                "started_at": at(Duration::seconds(start)),
                "deployed_at": at(Duration::seconds(finish)),
            }),
        )
        .bearer(&writer)
        .send()
        .assert_status(201);
    }

    let browser = Browser::open("pages", app.host.addr());
    sign_in(&browser, &reader);
    browser.goto(&format!("/ui/registries/{registry_id}/images/{image_id}"));
    browser.screenshot("image-provenance", 1440, false);
    let steps = browser.script(
        "return Array.from(document.querySelectorAll('ol#provenance > li.step'))\
           .map(step => [step.querySelector('h3').textContent, \
                         step.querySelector('data.took')?.getAttribute('value') ?? null])",
        &[],
    );
    let steps = steps.as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s[0].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "Commits",
            "Build",
            "Push",
            "Deployed to checkout / staging",
            "Deployed to checkout / production"
        ]
    );
    // Commit → build: the first listed commit, 190 minutes before the build (give or take
    // the seconds the request took); the push when it was received, right after the build;
    // each deployment from the push (the image was ready to pull then) to its finish.
    let took: Vec<f64> = steps[1..]
        .iter()
        .map(|s| s[1].as_str().unwrap().parse().unwrap())
        .collect();
    assert!((took[0] - 190.0).abs() < 1.0, "commit → build {took:?}");
    assert!(took[1] < 0.1, "build → push {took:?}");
    assert!(
        (took[2] - 75.0 / 60.0).abs() < 0.1,
        "push → staging {took:?}"
    );
    assert!(
        (took[3] - 200.0 / 60.0).abs() < 0.1,
        "push → production {took:?}"
    );
    let deliveries = browser.text("table#deliveries");
    assert!(
        deliveries.contains("image.pushed"),
        "the deploy trigger of its push: {deliveries}"
    );
}
