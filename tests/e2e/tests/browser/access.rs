//! The dashboard for a visitor without a mouse or without script: the keyboard reaches every
//! control, in the page's order, and shows where it is; with script blocked, signing in,
//! reading the overview, changing its range, browsing to an image and signing out all work
//! (the pages carry no script, so nothing of theirs may need one).

use fantoccini::key::Key;
use serde_json::{Value, json};

use crate::browser::{Browser, Script, WIDTHS};
use crate::history::History;
use crate::site::{Page, sign_in, sign_out, signed_in_pages};

/// A page script's `describe(e)`: an element as `tag "text"` (`a "Overview"`), a field by its
/// name (`select "days"`).
const DESCRIBE: &str = r#"
const describe = e => e.tagName.toLowerCase() + ' "'
  + (e.matches('input, select') ? e.getAttribute('name') : e.textContent.trim()).slice(0, 60) + '"';
"#;

/// The focused element described, with its index among `arguments[0]` (the [`CONTROLS`]),
/// whether it is inside `<main>`, whether it is a box that scrolls sideways, its outline and
/// whether `:focus-visible` matches it; `null` when the focus is on nothing (the body, or out of
/// the page).
const FOCUSED: &str = r#"
const e = document.activeElement;
if (!e || e === document.body || e === document.documentElement) return null;
const style = getComputedStyle(e);
return {
  name: describe(e),
  index: Array.prototype.indexOf.call(document.querySelectorAll(arguments[0]), e),
  in_main: document.querySelector('main#main').contains(e),
  scroller: e.scrollWidth > e.clientWidth && ['auto', 'scroll'].includes(style.overflowX),
  outline: style.outlineStyle + ' ' + style.outlineWidth,
  outlined: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0,
  focus_visible: e.matches(':focus-visible'),
};
"#;

/// What a keyboard should reach: links, buttons and form fields, less hidden fields.
const CONTROLS: &str = "a[href], button, input:not([type=hidden]), select, textarea";

/// How many Tabs a page may take before it counts as a trap (the busiest page has a few
/// dozen controls; a date field takes one Tab per part).
const MOST_TABS: usize = 400;

#[test]
fn the_keyboard_reaches_every_control_in_order_and_shows_where_the_focus_is() {
    let history = History::post();
    let browser = Browser::open("access", history.app.host.addr());
    browser.goto("/ui/");
    assert_eq!(
        scripting(&browser),
        "enabled",
        "script runs here (the other test's check tells the two apart)"
    );
    let mut problems = Vec::new();
    let sign_in_page = Page {
        name: "sign-in",
        path: "/ui/".to_owned(),
    };
    walk_with_tab(&browser, &sign_in_page, &mut problems);
    sign_in(&browser, &history.reader);

    // From the top of the overview: the skip link first, then the header in its order.
    browser.goto("/ui/");
    let header: Vec<String> = (0..6)
        .map(|_| {
            browser.press(Key::Tab);
            focused(&browser).map_or("(nothing)".to_owned(), |e| name(&e))
        })
        .collect();
    assert_eq!(
        header,
        [
            r#"a "Skip to content""#,
            r#"a "cd-images""#,
            r#"a "Overview""#,
            r#"a "Registries""#,
            r#"a "Deployments""#,
            r#"button "Sign out""#,
        ],
        "Tab from the top of the overview: the skip link, the brand, the navigation, sign out"
    );

    // The skip link shows itself when focused, and Enter follows it past the header.
    browser.goto("/ui/");
    browser.press(Key::Tab);
    let skip = browser.script(
        "const e = document.activeElement, r = e.getBoundingClientRect();\
         return {skip: e.matches('a.skip[href=\"#main\"]'), outline: getComputedStyle(e).outlineStyle,\
                 on_screen: r.left >= 0 && r.top >= 0 && r.right <= innerWidth && r.width > 0}",
        &[],
    );
    assert_eq!(
        skip,
        json!({"skip": true, "outline": "solid", "on_screen": true}),
        "the focused skip link is on screen and outlined"
    );
    let shot = browser.screenshot("skip-link-focused", 1440, false);
    browser.press(Key::Enter);
    let target = browser.script(
        "const main = document.querySelector('main#main');\
         return {hash: location.hash, target: document.querySelector(':target') === main}",
        &[],
    );
    assert_eq!(
        target,
        json!({"hash": "#main", "target": true}),
        "Enter on the skip link goes to <main>"
    );
    browser.press(Key::Tab);
    let next = focused(&browser);
    assert!(
        next.as_ref().is_some_and(|e| e["in_main"] == true),
        "the Tab after the skip link lands inside <main>, not back in the header: {next:?}"
    );

    for page in signed_in_pages(&history) {
        walk_with_tab(&browser, &page, &mut problems);
    }
    assert!(
        problems.is_empty(),
        "keyboard problems (skip link screenshot: {}):\n{}",
        shot.display(),
        problems.join("\n")
    );
}

#[test]
fn without_script_a_visitor_signs_in_reads_the_overview_filters_browses_and_signs_out() {
    let history = History::post();
    let browser = Browser::open_with("access-no-script", history.app.host.addr(), Script::Off);
    browser.goto("/ui/");
    assert_eq!(
        scripting(&browser),
        "none",
        "script is blocked in this browser"
    );

    // The form posts the token without script (`sign_in` types and clicks only).
    sign_in(&browser, &history.reader);
    assert_eq!(browser.current_path(), "/ui/", "signed in on the overview");
    let tiles = browser.shown_texts("section.tile");
    assert_eq!(tiles.len(), 5, "five tiles: {tiles:?}");
    for (tile, name) in tiles.iter().zip([
        "Lead time for changes",
        "Deployment frequency",
        "Change failure rate",
        "Failed deployment recovery time",
        "Deployment rework rate",
    ]) {
        assert!(
            tile.starts_with(name) && tile.contains("Previous period"),
            "the {name} tile shows its figures: {tile:?}"
        );
    }

    // The range picker is a plain GET form.
    let range_before = browser.shown_texts("p#range");
    browser.click("form.filters select[name=days] option[value='90']");
    browser.click("form.filters button[type=submit]");
    browser.wait_for("p#range");
    let path = browser.current_path();
    assert!(
        path.starts_with("/ui/?") && path.contains("days=90"),
        "Apply puts the range in the URL: {path}"
    );
    let range_after = browser.shown_texts("p#range");
    assert_ne!(range_after, range_before, "#range says the new range");

    // Registries → a registry → an image, by their links.
    browser.click("nav a[href='/ui/registries']");
    browser.wait_for("table#registries");
    let web = history.registry("shop/web");
    browser.click(&format!(
        "table#registries a[href='/ui/registries/{}']",
        web.registry_id
    ));
    browser.wait_for("table#images");
    let image = &history.images[3];
    let image_path = format!(
        "/ui/registries/{}/images/{}",
        image.registry_id, image.image_id
    );
    browser.click(&format!("table#images a[href='{image_path}']"));
    browser.wait_for("ol#provenance");
    assert_eq!(browser.current_path(), image_path, "the image's page");
    let shown = browser.shown_texts("main").concat();
    assert!(
        shown.contains(&image.version) && shown.contains(&image.git_hash[..7]),
        "the image page shows its version {} and commit {}: {shown:?}",
        image.version,
        image.git_hash
    );
    browser.screenshot("image", 1440, false);

    sign_out(&browser);
    let errors = browser.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

/// Opens `page` at each of [`WIDTHS`] and presses Tab until the focus leaves the page or comes
/// back round, noting each control the keyboard cannot reach and each focus shown without an
/// outline.
fn walk_with_tab(browser: &Browser, page: &Page, problems: &mut Vec<String>) {
    for width in WIDTHS {
        browser.set_width(width);
        walk_once_with_tab(
            browser,
            page,
            &format!("{} at {width} px", page.path),
            problems,
        );
    }
    browser.set_width(1440);
}

fn walk_once_with_tab(browser: &Browser, page: &Page, at: &str, problems: &mut Vec<String>) {
    browser.goto(&page.path);
    let controls = browser.script(
        &format!("{DESCRIBE} return Array.from(document.querySelectorAll(arguments[0]), describe)"),
        &[json!(CONTROLS)],
    );
    let controls: Vec<&str> = controls
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let mut reached = vec![false; controls.len()];
    let (mut first, mut previous) = (None, None);
    for tabs in 1.. {
        if tabs > MOST_TABS {
            problems.push(format!(
                "{} ({at}): still within the page after {MOST_TABS} Tabs",
                page.name
            ));
            break;
        }
        browser.press(Key::Tab);
        let Some(focused) = focused(browser) else {
            break;
        };
        let at = format!("{} ({at}): {}", page.name, name(&focused));
        let index = focused["index"]
            .as_i64()
            .and_then(|i| usize::try_from(i).ok());
        // A Tab within a control: a date field's parts and its calendar button are the
        // browser's own widget, which draws their focus itself. The outline is the page's
        // to show when the keyboard enters the control.
        let within = index.is_some() && index == previous;
        previous = index;
        match index {
            Some(index) => {
                // Round again: the last control passes the focus back to the first.
                if first == Some(index) && !within && reached.iter().filter(|r| **r).count() > 1 {
                    break;
                }
                first.get_or_insert(index);
                reached[index] = true;
            }
            // Chromium lets the keyboard into a box that scrolls without a control inside
            // (a table wider than a phone), so the arrow keys can scroll it.
            None if focused["scroller"] == true => {}
            None => problems.push(format!("{at} takes the focus but is not a control")),
        }
        if !within && (focused["outlined"] != true || focused["focus_visible"] != true) {
            problems.push(format!(
                "{at} focused without a visible outline (outline {}, :focus-visible {})",
                focused["outline"], focused["focus_visible"]
            ));
        }
    }
    for (control, reached) in controls.iter().zip(reached) {
        if !reached {
            problems.push(format!(
                "{} ({at}): {control} is not reached by Tab",
                page.name
            ));
        }
    }
}

/// What has the focus ([`FOCUSED`]), if a control has.
fn focused(browser: &Browser) -> Option<Value> {
    Some(browser.script(&format!("{DESCRIBE}{FOCUSED}"), &[json!(CONTROLS)]))
        .filter(|e| !e.is_null())
}

fn name(focused: &Value) -> String {
    focused["name"].as_str().unwrap_or_default().to_owned()
}

/// The page's own view of script, its `scripting` media feature: `none` when blocked. The
/// test's scripts, this one included, run through DevTools either way, so that they run says
/// nothing.
fn scripting(browser: &Browser) -> String {
    let scripting = browser.script(
        "return ['none', 'initial-only', 'enabled']\
           .find(v => matchMedia('(scripting: ' + v + ')').matches)",
        &[],
    );
    scripting.as_str().unwrap_or("(none matches)").to_owned()
}
