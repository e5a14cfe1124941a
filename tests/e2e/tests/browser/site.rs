//! The dashboard as a plain HTTP client sees it: its pages on the seeded history, signing in
//! without a browser, and the markup a browser needs nothing of to read (a hidden field).

use crate::helpers::{TestApp, TestResponse};
use crate::history::History;

/// The name of the cookie the dashboard keeps the token in.
pub const TOKEN_COOKIE: &str = "cd_token";

/// One page of the dashboard: a short name (for screenshots and messages) and its path.
pub struct Page {
    pub name: &'static str,
    pub path: String,
}

/// Every page of the dashboard on `history`, signed in: the overview (default range, a year,
/// filtered), the registries, a private and a public registry, an image, the deployments.
pub fn signed_in_pages(history: &History) -> Vec<Page> {
    let web = history.registry("shop/web");
    let api = history.registry("shop/api");
    // W3: three commits, a rework deployment after a failed one.
    let image = &history.images[3];
    vec![
        page("overview", "/ui/"),
        page("overview-year", "/ui/?days=365"),
        page(
            "overview-web-production",
            "/ui/?days=90&app_id=web&environment=production",
        ),
        page("registries", "/ui/registries"),
        page("registry", &format!("/ui/registries/{}", web.registry_id)),
        page(
            "public-registry",
            &format!("/ui/registries/{}", api.registry_id),
        ),
        page(
            "image",
            &format!(
                "/ui/registries/{}/images/{}",
                image.registry_id, image.image_id
            ),
        ),
        page("deployments", "/ui/deployments"),
    ]
}

fn page(name: &'static str, path: &str) -> Page {
    Page {
        name,
        path: path.to_owned(),
    }
}

/// The cookies a response sets, as `name=value` (what a client sends back).
pub fn set_cookies(response: &TestResponse) -> Vec<String> {
    response
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|value| value.split(';').next())
        .map(|pair| pair.trim().to_owned())
        .collect()
}

/// The `value` of the `<input name="{name}">` in `html`, if there is one.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let start = html[..at].rfind("<input")?;
    let end = start + html[start..].find('>')?;
    let tag = &html[start..end];
    let value = tag.split("value=\"").nth(1)?;
    Some(value[..value.find('"')?].replace("&amp;", "&"))
}

/// A form body (`application/x-www-form-urlencoded`) of `fields`.
pub fn form(fields: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

/// What a browser would hold after opening the sign-in page: its cookies and the form's
/// CSRF token.
pub struct SignInForm {
    pub cookies: Vec<String>,
    pub csrf: String,
}

impl SignInForm {
    /// Opens the sign-in page of `app` without a cookie.
    pub fn open(app: &TestApp) -> SignInForm {
        let response = app.get("/ui/").send();
        response.assert_status(200);
        let csrf = input_value(&response.text(), "csrf")
            .unwrap_or_else(|| panic!("no csrf field on the sign-in page: {}", response.text()));
        SignInForm {
            cookies: set_cookies(&response),
            csrf,
        }
    }

    /// Posts the form with `fields` (and the page's cookies), as the browser would from
    /// `app`'s origin.
    pub fn post(&self, app: &TestApp, fields: &[(&str, &str)]) -> TestResponse {
        let origin = format!("http://{}", app.host.addr());
        let mut request = app
            .request("POST", "/ui/sign-in")
            .raw("application/x-www-form-urlencoded", form(fields))
            .header("origin", &origin);
        if !self.cookies.is_empty() {
            request = request.header("cookie", &self.cookies.join("; "));
        }
        request.send()
    }
}

/// Signs `token` in without a browser and returns the `Cookie` header that carries it.
pub fn sign_in_over_http(app: &TestApp, token: &str) -> String {
    let form = SignInForm::open(app);
    let response = form.post(app, &[("token", token), ("csrf", &form.csrf)]);
    response.assert_status(303);
    set_cookies(&response)
        .into_iter()
        .find(|cookie| cookie.starts_with(&format!("{TOKEN_COOKIE}=")))
        .unwrap_or_else(|| panic!("signing in sets no {TOKEN_COOKIE}: {response:?}"))
}

/// Signs `token` in through the sign-in form in `browser`, landing on the overview.
pub fn sign_in(browser: &crate::browser::Browser, token: &str) {
    browser.goto("/ui/");
    browser.fill("form#sign-in input[name=token]", token);
    browser.click("form#sign-in button[type=submit]");
    browser.wait_for("form#sign-out");
}

/// Signs out through the header's form in `browser`: the sign-in form comes back and the
/// token's cookie is gone.
pub fn sign_out(browser: &crate::browser::Browser) {
    browser.click("form#sign-out button[type=submit]");
    browser.wait_for("form#sign-in");
    assert!(
        browser
            .cookies()
            .iter()
            .all(|cookie| cookie.name() != TOKEN_COOKIE),
        "signing out clears the cookie: {:?}",
        browser.cookies()
    );
}
