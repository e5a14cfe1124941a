//! Every page reads well at a phone's 375 px and a desktop's 1440 px, in the light and the dark
//! colour scheme: laid out at the device's width (a viewport meta), nothing wider than the
//! screen, no console error (a CSP violation, a failed request), and a screenshot of each for
//! a reviewer.

use crate::browser::{Browser, WIDTHS};
use crate::history::History;
use crate::site::{Page, sign_in, signed_in_pages};

#[test]
fn every_page_fits_375_and_1440_pixels_light_and_dark_without_console_errors() {
    let history = History::post();
    let browser = Browser::open("layout", history.app.host.addr());
    let mut problems = Vec::new();
    let sign_in_page = [Page {
        name: "sign-in",
        path: "/ui/".to_owned(),
    }];
    check_pages(&browser, &sign_in_page, &mut problems);
    sign_in(&browser, &history.reader);
    browser.console_errors();
    check_pages(&browser, &signed_in_pages(&history), &mut problems);

    // The dark scheme is not the light one.
    let background = |dark: bool| {
        browser.set_dark(dark);
        browser.goto("/ui/");
        browser.script(
            "return getComputedStyle(document.body).backgroundColor",
            &[],
        )
    };
    let (light, dark) = (background(false), background(true));
    if light == dark {
        problems.push(format!(
            "the dark colour scheme has the light background {light}"
        ));
    }
    assert!(
        problems.is_empty(),
        "layout problems:\n{}",
        problems.join("\n")
    );
}

/// Opens each of `pages` at each width, light then dark, noting what does not fit or logs an
/// error.
fn check_pages(browser: &Browser, pages: &[Page], problems: &mut Vec<String>) {
    for dark in [false, true] {
        browser.set_dark(dark);
        for width in WIDTHS {
            browser.set_width(width);
            for page in pages {
                browser.goto(&page.path);
                let scheme = if dark { "dark" } else { "light" };
                let at = format!("{} ({}) at {width} px, {scheme}", page.name, page.path);
                let widths = browser.widths(width);
                // A phone lays a page without a viewport meta out 980 px wide, and widens the
                // layout to fit content wider than its screen.
                if width < 600 && widths.viewport == 980 {
                    problems.push(format!(
                        "{at}: laid out 980 px wide: no <meta name=viewport content=\"width=device-width\">"
                    ));
                } else if widths.content > widths.room || widths.viewport > u64::from(width) {
                    problems.push(format!(
                        "{at}: {} px of content on a {width} px screen; past its edge: {}",
                        widths.content.max(widths.viewport),
                        widths.past_the_edge.join(", ")
                    ));
                }
                for error in browser.console_errors() {
                    problems.push(format!("{at}: console: {error}"));
                }
                browser.screenshot(page.name, width, dark);
            }
        }
    }
}
