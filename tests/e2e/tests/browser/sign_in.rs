//! Signing in and out: the form takes a token and keeps it in an HttpOnly, SameSite=Strict
//! cookie scoped to `/ui`; the token is never in a page or a URL; the form refuses a post
//! without its CSRF token.

use crate::browser::Browser;
use crate::history::History;
use crate::site::{SignInForm, TOKEN_COOKIE, sign_in, sign_out};

#[test]
fn a_token_signs_in_through_the_form_and_signing_out_forgets_it() {
    let history = History::post();
    let app = &history.app;
    let root = app.get("/").send();
    root.assert_status(303);
    assert_eq!(
        root.header("location"),
        Some("/ui/"),
        "/ redirects to the dashboard"
    );

    let browser = Browser::open("sign_in", app.host.addr());
    browser.goto("/ui/");
    for field in [
        "form#sign-in[method=post][action='/ui/sign-in']",
        "form#sign-in input[name=token][type=password]",
        "form#sign-in input[name=csrf][type=hidden]",
        "form#sign-in button[type=submit]",
    ] {
        assert!(browser.has(field), "the sign-in page has {field}");
    }
    browser.screenshot("sign-in", 1440, false);

    browser.fill("form#sign-in input[name=token]", "cd_not-a-token-of-anyone");
    browser.click("form#sign-in button[type=submit]");
    browser.wait_for("#sign-in-error");
    assert!(
        browser.has("form#sign-in"),
        "a wrong token shows the form again"
    );
    assert!(
        !browser.source().contains("cd_not-a-token-of-anyone"),
        "a wrong token is not shown back either"
    );
    browser.screenshot("sign-in-error", 1440, false);

    sign_in(&browser, &history.reader);
    assert_eq!(
        browser.current_path(),
        "/ui/",
        "signing in lands on the overview"
    );
    let cookies = browser.cookies();
    let cookie = cookies
        .iter()
        .find(|cookie| cookie.name() == TOKEN_COOKIE)
        .unwrap_or_else(|| panic!("no {TOKEN_COOKIE} cookie among {cookies:?}"));
    assert_eq!(cookie.http_only(), Some(true), "{cookie}");
    assert_eq!(
        cookie.same_site(),
        Some(cookie::SameSite::Strict),
        "{cookie}"
    );
    assert_eq!(cookie.path(), Some("/ui"), "{cookie}");
    assert_eq!(
        browser.script("return document.cookie", &[]),
        "",
        "page script cannot read the token"
    );

    // The token is in no page and no URL the browser went to, whatever page it opens.
    for path in ["/ui/", "/ui/registries", "/ui/deployments"] {
        browser.goto(path);
        assert!(
            !browser.source().contains(&history.reader),
            "{path} shows the token"
        );
        let urls = browser.script(
            "return [location.href, ...performance.getEntries().map(e => e.name)]",
            &[],
        );
        assert!(
            !urls.to_string().contains(&history.reader),
            "a URL carries the token: {urls}"
        );
    }

    sign_out(&browser);
    browser.goto("/ui/deployments");
    assert!(
        browser.has("form#sign-in"),
        "signed out, an org's page shows the sign-in form"
    );
}

#[test]
fn the_sign_in_form_answers_401_to_a_wrong_token_and_403_without_its_csrf_token() {
    let history = History::post();
    let app = &history.app;
    let form = SignInForm::open(app);

    let wrong = form.post(app, &[("token", "cd_wrong"), ("csrf", &form.csrf)]);
    wrong.assert_status(401);
    assert!(
        wrong.text().contains("id=\"sign-in-error\""),
        "{}",
        wrong.text()
    );

    let without_csrf = form.post(app, &[("token", &history.reader)]);
    without_csrf.assert_status(403);
    assert!(
        crate::site::set_cookies(&without_csrf)
            .iter()
            .all(|cookie| !cookie.starts_with(&format!("{TOKEN_COOKIE}="))),
        "no cookie without the CSRF token"
    );
    let wrong_csrf = form.post(app, &[("token", &history.reader), ("csrf", "forged")]);
    wrong_csrf.assert_status(403);

    let signed_in = form.post(app, &[("token", &history.reader), ("csrf", &form.csrf)]);
    signed_in.assert_status(303);
    assert_eq!(signed_in.header("location"), Some("/ui/"));
    let set_cookie = signed_in
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(&format!("{TOKEN_COOKIE}=")))
        .expect("a token cookie")
        .to_ascii_lowercase();
    for attribute in ["httponly", "samesite=strict", "path=/ui"] {
        assert!(
            set_cookie.contains(attribute),
            "{set_cookie} lacks {attribute}"
        );
    }
}
