//! What every page is made of, read as bytes by a plain client: HTML with a
//! Content-Security-Policy that allows no inline script or style, no script at all, one
//! stylesheet under a content-hashed URL cached for long, nothing fetched from elsewhere, and
//! the page and its stylesheet together at most 100 KB.

use crate::history::History;
use crate::site::{Page, sign_in_over_http, signed_in_pages};

/// A page and its stylesheet, at most (bytes).
const MAX_PAGE_BYTES: usize = 100 * 1024;

/// The shortest caching a content-hashed stylesheet should get (30 days, in seconds).
const MIN_STYLESHEET_MAX_AGE: u64 = 30 * 24 * 3600;

#[test]
fn every_page_has_one_hashed_stylesheet_no_script_and_weighs_at_most_100_kb() {
    let history = History::post();
    let app = &history.app;
    let cookie = sign_in_over_http(app, &history.reader);
    let mut pages: Vec<(Page, Option<&str>)> = vec![(
        Page {
            name: "sign-in",
            path: "/ui/".to_owned(),
        },
        None,
    )];
    pages.extend(
        signed_in_pages(&history)
            .into_iter()
            .map(|page| (page, Some(cookie.as_str()))),
    );
    let mut problems = Vec::new();
    for (page, cookie) in &pages {
        let mut request = app.get(&page.path);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send();
        let at = format!("{} ({})", page.name, page.path);
        if response.status != 200 {
            problems.push(format!("{at}: status {}", response.status));
            continue;
        }
        let html = response.text();
        if !response
            .header("content-type")
            .is_some_and(|kind| kind.starts_with("text/html"))
        {
            problems.push(format!(
                "{at}: content-type {:?}",
                response.header("content-type")
            ));
        }
        match response.header("content-security-policy") {
            None => problems.push(format!("{at}: no Content-Security-Policy")),
            Some(policy) if policy.contains("unsafe-") => {
                problems.push(format!("{at}: the CSP allows {policy:?}"))
            }
            Some(_) => {}
        }
        if html.to_ascii_lowercase().contains("<script") {
            problems.push(format!("{at}: a <script>"));
        }
        if html.contains(" src=\"http") || html.contains(" src=\"//") {
            problems.push(format!("{at}: something loaded from elsewhere"));
        }
        let stylesheets: Vec<&str> = html
            .split("<link")
            .skip(1)
            .filter(|tag| tag[..tag.find('>').unwrap_or(tag.len())].contains("stylesheet"))
            .filter_map(|tag| tag.split("href=\"").nth(1))
            .filter_map(|href| href.split('"').next())
            .collect();
        let [stylesheet] = stylesheets[..] else {
            problems.push(format!("{at}: stylesheets {stylesheets:?}, not one"));
            continue;
        };
        let hash = stylesheet
            .strip_prefix("/ui/static/style.")
            .and_then(|rest| rest.strip_suffix(".css"));
        if !hash
            .is_some_and(|hash| !hash.is_empty() && hash.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            problems.push(format!(
                "{at}: stylesheet {stylesheet}, not /ui/static/style.<hash>.css"
            ));
        }
        let css = app.get(stylesheet).send();
        if css.status != 200
            || !css
                .header("content-type")
                .is_some_and(|kind| kind.starts_with("text/css"))
        {
            problems.push(format!(
                "{at}: {stylesheet} answers {} {:?}",
                css.status,
                css.header("content-type")
            ));
            continue;
        }
        let max_age = css
            .header("cache-control")
            .and_then(|control| control.split("max-age=").nth(1))
            .and_then(|age| age.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|age| age.parse::<u64>().ok());
        if max_age.is_none_or(|age| age < MIN_STYLESHEET_MAX_AGE) {
            problems.push(format!(
                "{at}: {stylesheet} cached {:?}",
                css.header("cache-control")
            ));
        }
        if css.text().contains("url(http") || css.text().contains("@import") {
            problems.push(format!("{at}: the stylesheet loads from elsewhere"));
        }
        let weight = response.body.len() + css.body.len();
        eprintln!(
            "{at}: {} bytes of HTML + {} of CSS = {weight}",
            response.body.len(),
            css.body.len()
        );
        if weight > MAX_PAGE_BYTES {
            problems.push(format!("{at}: {weight} bytes, over {MAX_PAGE_BYTES}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
