//! Browser tests of the dashboard (`/ui/`): the built components hosted by `cd-host` as in the
//! API tests, a seeded history posted through the API, and the pages opened in headless
//! Chromium (`apt-get install chromium chromium-driver`; without them every test fails, naming
//! the packages).
//!
//! Layout: `browser` is the harness (chromedriver, one session per test, page script on or
//! off, keys, console log, colour scheme, screenshots under `$CARGO_TARGET_DIR/screenshots`); `history` posts what the pages
//! show; `site` is the dashboard as a plain HTTP client sees it. One module per area, each a
//! test or two that keep one browser for all their pages (a launch is the cost):
//!
//! - `access`: the keyboard reaches every control in order and shows its focus; with page
//!   script blocked, everything still works;
//! - `sign_in`: the form, the cookie, CSRF, signing out;
//! - `overview`: every tile and chart table equals the API's figures for the same range and
//!   filters;
//! - `pages`: registries, a registry, an image's provenance, the deployments' timelines;
//! - `hostile_text`: pipeline text shown inert, bidi controls visible;
//! - `layout`: every page at 375 and 1440 px, light and dark, without overflow or console
//!   errors;
//! - `page_weight`: headers and bytes of every page (no browser).

// The API tests' harness, shared as is: this binary uses part of it.
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "../api/sqld.rs"]
mod sqld;

mod browser;
mod history;
mod site;

mod access;
mod hostile_text;
mod layout;
mod overview;
mod page_weight;
mod pages;
mod sign_in;
