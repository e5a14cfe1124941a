//! Text from pipelines is shown, never run or applied: markup in a committer, a commit
//! author, a tag or an app name is text on every page (no script runs, no dialog opens, no
//! element is made of it), and a bidi control in a commit message, the one field that keeps
//! one, is shown as a visible marker instead of reversing what follows it. Identifiers and
//! names refuse bidi controls outright (422).

use serde_json::{Value, json};

use crate::browser::Browser;
use crate::helpers::cd_request;
use crate::history::{History, sha};
use crate::site::sign_in;

const SCRIPT: &str = "<script>alert(1)</script>";
const IMG: &str = "<img src=x onerror=alert(2)>";
/// RIGHT-TO-LEFT OVERRIDE: what follows it is shown reversed (`exe.gnp` as `png.exe`).
const RLO: char = '\u{202E}';

/// What a page's DOM made of the hostile text: elements that would run script, and bidi or
/// invisible format characters left raw in its text.
const INERT: &str = r#"
const raw = [...document.body.textContent]
  .filter(c => /[\u200B-\u200F\u202A-\u202E\u2060-\u2069\uFEFF]/.test(c))
  .map(c => 'U+' + c.codePointAt(0).toString(16).toUpperCase());
return {
  scripts: document.querySelectorAll('script').length,
  handlers: Array.from(document.querySelectorAll('*'))
    .filter(e => Array.from(e.attributes).some(a => a.name.startsWith('on'))).length,
  images: Array.from(document.querySelectorAll('img')).map(i => i.getAttribute('src')),
  raw,
  text: document.body.textContent,
};
"#;

#[test]
fn pipeline_text_is_shown_as_text_and_bidi_controls_as_visible_markers() {
    let history = History::post();
    let app = &history.app;
    let web = history.registry("shop/web");
    let images_path = format!("/api/v1/registries/{}/images", web.registry_id);
    let post_image = |body: &Value| app.post(&images_path, body).bearer(&history.writer).send();

    // Refused: an OCI tag cannot hold markup; identifiers and names no bidi control.
    let mut body = cd_request("hostile-tag");
    body["tag_name"] = json!(IMG);
    post_image(&body).assert_problem(422, Some("tag_name"));
    let mut body = cd_request("hostile-committer");
    body["committer"] = json!(format!("mallory {RLO}gnp.exe"));
    post_image(&body).assert_problem(422, Some("committer"));
    let mut body = cd_request("hostile-author");
    body["git_hash"] = json!(sha("hostile-author"));
    body["commits"] = json!([{"sha": sha("hostile-author"), "timestamp": history.ago(3, 0),
        "author": format!("mallory {RLO}gnp.exe")}]);
    body["git_hash_commit_timestamp"] = json!(history.ago(3, 0));
    post_image(&body).assert_problem(422, Some("commits[0].author"));
    app.post(
        "/api/v1/registries",
        &json!({"image_repository_name": format!("shop/{RLO}bew"), "container_registry_id": "ghcr"}),
    )
    .bearer(&history.writer)
    .send()
    .assert_problem(422, Some("image_repository_name"));

    // Kept: markup everywhere printable text goes, a bidi control in the commit message.
    let message = format!("Fix the {RLO}gnp.exe upload\n\n{SCRIPT}");
    let author = format!("{IMG} <mallory@example.com>");
    let mut body = cd_request("hostile");
    body["committer"] = json!(SCRIPT);
    body["commit_msg"] = json!(message);
    body["tags"] = json!([IMG]);
    body["git_hash"] = json!(sha("hostile"));
    body["git_hash_commit_timestamp"] = json!(history.ago(2, 1));
    body["commits"] =
        json!([{"sha": sha("hostile"), "timestamp": history.ago(2, 1), "author": author}]);
    let created = post_image(&body);
    created.assert_status(201);
    let image = created.json();
    assert_eq!(
        image["commit_msg"],
        message.as_str(),
        "the message is kept verbatim"
    );
    let deployment = |app_id: &str| {
        json!({"image_id": image["image_id"], "project_id": "shop", "app_id": app_id,
               "environment": "production", "prod": true, "deployed_at": history.ago(2, 0)})
    };
    app.post("/api/v1/deployments", &deployment(&format!("web{RLO}")))
        .bearer(&history.writer)
        .send()
        .assert_problem(422, Some("app_id"));
    app.post("/api/v1/deployments", &deployment(IMG))
        .bearer(&history.writer)
        .send()
        .assert_status(201);

    let browser = Browser::open("hostile_text", app.host.addr());
    sign_in(&browser, &history.reader);
    let image_page = format!(
        "/ui/registries/{}/images/{}",
        web.registry_id,
        image["image_id"].as_str().unwrap()
    );
    // Each page and the hostile text it must show as text.
    let pages: [(&str, String, Vec<&str>); 5] = [
        ("overview", "/ui/".to_owned(), vec![]),
        (
            "registry",
            format!("/ui/registries/{}", web.registry_id),
            vec![SCRIPT],
        ),
        ("image", image_page, vec![SCRIPT, IMG]),
        ("deployments", "/ui/deployments".to_owned(), vec![IMG]),
        ("registries", "/ui/registries".to_owned(), vec![]),
    ];
    for (name, path, literals) in &pages {
        browser.goto(path);
        browser.screenshot(name, 1440, false);
        assert_eq!(browser.open_dialog(), None, "no dialog on {path}");
        let dom = browser.script(INERT, &[]);
        assert_eq!(dom["scripts"], 0, "no <script> on {path}");
        assert_eq!(dom["handlers"], 0, "no on* attribute on {path}");
        assert!(
            dom["images"]
                .as_array()
                .unwrap()
                .iter()
                .all(|src| src != "x"),
            "no <img> made of pipeline text on {path}: {}",
            dom["images"]
        );
        assert_eq!(
            dom["raw"],
            json!([]),
            "no raw bidi or invisible character on {path}"
        );
        let text = dom["text"].as_str().unwrap();
        for literal in literals {
            assert!(text.contains(literal), "{path} shows {literal:?} as text");
        }
    }

    // On the image page, the message's U+202E is a visible marker; the text after it reads
    // in order.
    browser.goto(&pages[2].1);
    let marker = browser.script(
        "const m = document.querySelector('span.invisible-char[title=\"U+202E\"]');\
         return m && {text: m.textContent, around: m.parentElement.textContent}",
        &[],
    );
    assert!(
        !marker.is_null(),
        "the commit message's U+202E is shown as span.invisible-char[title=U+202E] on the image page"
    );
    assert_eq!(marker["text"], "⟨U+202E⟩", "{marker}");
    assert!(
        marker["around"]
            .as_str()
            .unwrap()
            .contains("⟨U+202E⟩gnp.exe upload"),
        "{marker}"
    );
    browser.goto("/ui/deployments");
    let apps = browser.script(
        "return Array.from(document.querySelectorAll('section.timeline'), s => s.getAttribute('data-app'))",
        &[],
    );
    assert!(
        apps.as_array().unwrap().iter().any(|app| app == IMG),
        "the app named with markup has its timeline: {apps}"
    );

    // The check above is not vacuous: a dialog script does open is seen.
    browser.script("setTimeout(() => alert('probe'), 0)", &[]);
    assert_eq!(browser.wait_for_dialog().as_deref(), Some("probe"));
    browser.dismiss_dialog();
}
