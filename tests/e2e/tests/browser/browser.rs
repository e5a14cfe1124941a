//! The browser harness: headless Chromium driven over WebDriver (chromedriver, fantoccini),
//! behind a blocking API so a test reads top to bottom like the API tests do.
//!
//! Each [`Browser`] starts a chromedriver of its own on a free port and one session in it (one
//! Chromium). A browser launch costs about half a second, so each test keeps one session for
//! all its pages. What WebDriver does not standardise comes from chromedriver's own endpoints:
//! the console log (`se/log`) and the DevTools protocol (`goog/cdp/execute`: colour scheme,
//! viewport, full-page screenshots).
//!
//! Scripts the test runs ([`Browser::script`]) go through DevTools and are not subject to the
//! page's Content-Security-Policy: the pages themselves carry no script, the tests read the DOM
//! the browser built with one.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use base64::Engine as _;
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// What to install when chromedriver is missing (CI's `.ci/run` installs it).
const INSTALL: &str = "apt-get install chromium chromium-driver";

/// A chromedriver process on 127.0.0.1, shut down with its browsers when dropped.
struct Chromedriver {
    child: Child,
    port: u16,
}

impl Chromedriver {
    /// Starts `chromedriver` from PATH on a free port and waits until it is ready. A missing
    /// chromedriver fails the test, naming the packages: the browser tests never skip.
    ///
    /// Started again on a new port if its port was taken from under it
    /// (`cd_host::free_port`); any other exit fails the test with what chromedriver printed.
    fn start() -> Chromedriver {
        cd_host::free_port::start_on_free_ports(Chromedriver::start_once)
            .unwrap_or_else(|output| panic!("chromedriver exited before it was ready:\n{output}"))
    }

    /// A ready chromedriver, or what it printed where it exited first.
    fn start_once() -> Result<Chromedriver, String> {
        let [port] = cd_host::free_port::free_ports().expect("a free port");
        let output = tempfile::NamedTempFile::new().expect("a file for chromedriver's output");
        let to_output = || output.reopen().expect("chromedriver's output file");
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(to_output())
            .stderr(to_output())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("chromedriver does not start ({error}): the browser tests need `{INSTALL}`")
            });
        let printed = || std::fs::read_to_string(output.path()).unwrap_or_default();
        let mut driver = Chromedriver { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            // Its own line, not only a ready `/status`: another process's chromedriver on a
            // port taken from under this one would answer that too.
            if printed().contains(&format!("started successfully on port {port}"))
                && driver.get("/status").contains("\"ready\":true")
            {
                return Ok(driver);
            }
            if matches!(driver.child.try_wait(), Ok(Some(_))) {
                return Err(printed());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "chromedriver on port {port} was not ready within 10 s:\n{}",
            printed()
        );
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A GET answered by chromedriver itself, read until its JSON body ends: chromedriver
    /// keeps the connection open whatever `Connection` says, so reading to EOF would hang.
    fn get(&self, path: &str) -> String {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return String::new();
        };
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        if stream.write_all(request.as_bytes()).is_err() {
            return String::new();
        }
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .ok();
        let (mut answer, mut chunk) = (Vec::new(), [0u8; 4096]);
        while let Ok(n @ 1..) = stream.read(&mut chunk) {
            answer.extend_from_slice(&chunk[..n]);
            if answer.trim_ascii_end().ends_with(b"}") {
                break;
            }
        }
        String::from_utf8_lossy(&answer).into_owned()
    }
}

impl Drop for Chromedriver {
    /// `GET /shutdown` quits chromedriver's browsers with it. Killing chromedriver alone would
    /// leave a Chromium running whenever its session was not closed (a test that panicked).
    fn drop(&mut self) {
        // One that exited (its port taken) has no browsers, and the port is another's now.
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        self.get("/shutdown");
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// A chromedriver endpoint beyond the W3C commands fantoccini knows, under the session.
#[derive(Debug)]
struct ChromedriverCommand {
    path: &'static str,
    body: Value,
}

impl WebDriverCompatibleCommand for ChromedriverCommand {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/{}",
            session_id.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.body.to_string()))
    }
}

/// Whether pages may run script: the dashboard's pages carry none, and must work for a visitor
/// whose browser runs none either.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Script {
    On,
    /// Chromium's content setting blocks every page's script, as a visitor's setting would.
    /// The test's own scripts ([`Browser::script`]) still run: chromedriver runs them through
    /// DevTools, whatever the page may.
    Off,
}

/// A page's widths in CSS pixels ([`Browser::widths`]).
pub struct Widths {
    pub viewport: u64,
    pub room: u64,
    pub content: u64,
    /// The innermost elements whose right edge is past the screen (a few), for a message.
    pub past_the_edge: Vec<String>,
}

/// The two widths every page must read well at: a small phone and a desktop.
pub const WIDTHS: [u32; 2] = [375, 1440];

/// One headless Chromium, for one test, pointed at one app.
pub struct Browser {
    runtime: tokio::runtime::Runtime,
    /// `Some` until dropped (closing the session consumes it).
    client: Option<Client>,
    /// Declared after `client`: the session closes before chromedriver shuts down.
    _driver: Chromedriver,
    /// The app's `http://127.0.0.1:port`.
    base_url: String,
    /// The test's name, the first part of its screenshots' names.
    test: String,
}

impl Browser {
    /// A new browser for `test`, at 1440 × 900 in the light colour scheme, whose paths are
    /// on `app_addr`.
    pub fn open(test: &str, app_addr: std::net::SocketAddr) -> Browser {
        Browser::open_with(test, app_addr, Script::On)
    }

    /// [`Browser::open`], with page script on or off.
    pub fn open_with(test: &str, app_addr: std::net::SocketAddr, script: Script) -> Browser {
        let driver = Chromedriver::start();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = runtime
            .block_on(
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(capabilities(script))
                    .connect(&driver.url()),
            )
            .unwrap_or_else(|error| {
                panic!("no Chromium session ({error}): the browser tests need `{INSTALL}`")
            });
        let browser = Browser {
            runtime,
            client: Some(client),
            _driver: driver,
            base_url: format!("http://{app_addr}"),
            test: test.to_owned(),
        };
        browser.set_width(1440);
        browser
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("an open session")
    }

    fn run<T>(
        &self,
        what: &str,
        future: impl Future<Output = Result<T, fantoccini::error::CmdError>>,
    ) -> T {
        self.runtime
            .block_on(future)
            .unwrap_or_else(|error| panic!("{what}: {error}\n{}", self.whereabouts()))
    }

    /// Where the browser is and the start of what it shows, for a failure's message.
    fn whereabouts(&self) -> String {
        let client = self.client();
        let url = self.runtime.block_on(client.current_url());
        let text = self.runtime.block_on(client.execute(
            "return document.body ? document.body.innerText.slice(0, 400) : ''",
            vec![],
        ));
        match (url, text) {
            (Ok(url), Ok(text)) => {
                format!("on {url}, showing: {}", text.as_str().unwrap_or_default())
            }
            _ => "(the browser does not answer)".to_owned(),
        }
    }

    /// Opens `path` of the app (`/ui/registries`) and waits for it to load.
    pub fn goto(&self, path: &str) {
        let url = format!("{}{path}", self.base_url);
        self.run(&format!("goto {path}"), self.client().goto(&url));
    }

    /// The address bar, without the app's origin (`/ui/?days=30`).
    pub fn current_path(&self) -> String {
        let url = self.run("current url", self.client().current_url());
        url.as_str()
            .strip_prefix(&self.base_url)
            .unwrap_or(url.as_str())
            .to_owned()
    }

    /// The serialized DOM of the page (not the bytes served: what the browser built).
    pub fn source(&self) -> String {
        self.run("page source", self.client().source())
    }

    /// Whether an element matches `css`.
    pub fn has(&self, css: &str) -> bool {
        self.script(
            "return document.querySelector(arguments[0]) !== null",
            &[json!(css)],
        )
        .as_bool()
        .unwrap()
    }

    /// The `textContent` of the first element matching `css` (panics when none does).
    /// `textContent`, not `innerText`: what is in the DOM, whatever the stylesheet hides.
    pub fn text(&self, css: &str) -> String {
        let text = self.script(
            "const e = document.querySelector(arguments[0]); return e && e.textContent",
            &[json!(css)],
        );
        text.as_str()
            .unwrap_or_else(|| panic!("no element {css} on {}", self.current_path()))
            .to_owned()
    }

    /// The text each element matching `css` shows, as WebDriver reads it (rendered text:
    /// what the stylesheet hides is left out), without running anything in the page.
    pub fn shown_texts(&self, css: &str) -> Vec<String> {
        let client = self.client();
        self.run(&format!("shown text of {css}"), async {
            let mut texts = Vec::new();
            for element in client.find_all(Locator::Css(css)).await? {
                texts.push(element.text().await?);
            }
            Ok(texts)
        })
    }

    /// Types `text` into the input matching `css`.
    pub fn fill(&self, css: &str, text: &str) {
        let client = self.client();
        self.run(&format!("fill {css}"), async {
            client.find(Locator::Css(css)).await?.send_keys(text).await
        });
    }

    /// Clicks the element matching `css` (a submit button: the browser follows the answer).
    pub fn click(&self, css: &str) {
        let client = self.client();
        self.run(&format!("click {css}"), async {
            client.find(Locator::Css(css)).await?.click().await
        });
    }

    /// Waits up to 5 s for an element matching `css` (the page a form submission led to).
    pub fn wait_for(&self, css: &str) {
        let client = self.client();
        self.run(
            &format!("wait for {css} (on {})", self.current_path()),
            async {
                client
                    .wait()
                    .at_most(Duration::from_secs(5))
                    .for_element(Locator::Css(css))
                    .await
                    .map(drop)
            },
        );
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) in the page and returns its
    /// value.
    pub fn script(&self, script: &str, args: &[Value]) -> Value {
        self.run("script", self.client().execute(script, args.to_vec()))
    }

    /// Presses and releases `key` where the focus is, as a keyboard would (WebDriver actions,
    /// not an element's send-keys, which would first move the focus to that element).
    pub fn press(&self, key: Key) {
        let key = char::from(key);
        let keyboard = KeyActions::new("keyboard".to_owned())
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
        self.run("press a key", self.client().perform_actions(keyboard));
    }

    /// The browser's cookies for the current page, HttpOnly ones included (WebDriver sees
    /// what page script cannot).
    pub fn cookies(&self) -> Vec<cookie::Cookie<'static>> {
        self.run("cookies", self.client().get_all_cookies())
    }

    /// The text of an open alert, confirm or prompt dialog, if one is open.
    pub fn open_dialog(&self) -> Option<String> {
        match self.runtime.block_on(self.client().get_alert_text()) {
            Ok(text) => Some(text),
            Err(error) if error.is_no_such_alert() => None,
            Err(error) => panic!("alert text: {error}"),
        }
    }

    /// The text of a dialog once one opens, waiting up to 5 s as [`Browser::wait_for`] does
    /// (a page's timer runs when the renderer gets the CPU); `None` if none did.
    pub fn wait_for_dialog(&self) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.open_dialog() {
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                dialog => return dialog,
            }
        }
    }

    /// Closes an open dialog.
    pub fn dismiss_dialog(&self) {
        self.run("dismiss dialog", self.client().dismiss_alert());
    }

    /// The console's SEVERE entries since the last call (CSP violations, failed requests,
    /// script errors), each `source: message`. Reading drains chromedriver's buffer.
    pub fn console_errors(&self) -> Vec<String> {
        let log = self.chromedriver("se/log", json!({"type": "browser"}));
        log.as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["level"] == "SEVERE")
            .map(|entry| format!("{}: {}", entry["source"], entry["message"]))
            .collect()
    }

    /// Lays pages out `width` CSS pixels wide, as a phone (touch, `mobile`) below 600: a page
    /// without `<meta name="viewport">` is then laid out 980 px wide and shrunk, as a phone
    /// would show it.
    pub fn set_width(&self, width: u32) {
        self.devtools(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600}),
        );
    }

    /// Answers `prefers-color-scheme` with dark or light from the next page on.
    pub fn set_dark(&self, dark: bool) {
        let scheme = if dark { "dark" } else { "light" };
        self.devtools(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]}),
        );
    }

    /// The page's widths: the layout viewport's (`innerWidth`: the device's with a viewport
    /// meta, 980 on a phone without), the room for content (`clientWidth`: without a
    /// vertical scrollbar), and that of the content (`scrollWidth`: when wider than the room,
    /// the page scrolls sideways), with the innermost elements reaching past `device_width` or
    /// overflowing their own box (a phone widens its layout viewport to fit content wider than
    /// the screen).
    pub fn widths(&self, device_width: u32) -> Widths {
        let widths = self.script(
            "const d = document.documentElement;\
             const edge = Math.min(arguments[0], d.clientWidth);\
             const wide = e => e.getBoundingClientRect().right > edge + 0.5\
               || (e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX === 'visible');\
             const past = Array.from(document.body.querySelectorAll('*'), e => e)\
               .filter(e => wide(e) && !Array.from(e.children).some(wide))\
               .slice(0, 5)\
               .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')\
                 + Array.from(e.classList, c => '.' + c).join('')\
                 + ' (' + e.scrollWidth + ' px wide: ' + e.textContent.trim().slice(0, 40) + ')');\
             return [innerWidth, d.clientWidth, d.scrollWidth, past]",
            &[json!(device_width)],
        );
        Widths {
            viewport: widths[0].as_u64().unwrap(),
            room: widths[1].as_u64().unwrap(),
            content: widths[2].as_u64().unwrap(),
            past_the_edge: widths[3]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_str().unwrap().to_owned())
                .collect(),
        }
    }

    /// Saves the whole page (beyond the viewport) as
    /// `screenshots/<test>-<page>-<width>[-dark].png` under the target directory, for a
    /// reviewer to look at, and returns its path.
    pub fn screenshot(&self, page: &str, width: u32, dark: bool) -> PathBuf {
        let shot = self.devtools(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64 PNG");
        assert_eq!(&png[1..4], b"PNG", "a PNG screenshot");
        let directory = screenshot_directory();
        std::fs::create_dir_all(&directory).unwrap();
        let suffix = if dark { "-dark" } else { "" };
        let path = directory.join(format!("{}-{page}-{width}{suffix}.png", self.test));
        std::fs::write(&path, png).unwrap();
        path
    }

    fn devtools(&self, command: &str, params: Value) -> Value {
        self.chromedriver(
            "goog/cdp/execute",
            json!({"cmd": command, "params": params}),
        )
    }

    fn chromedriver(&self, path: &'static str, body: Value) -> Value {
        self.run(
            path,
            self.client().issue_cmd(ChromedriverCommand { path, body }),
        )
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // A failed close leaves the browser to chromedriver's shutdown.
            self.runtime.block_on(client.close()).ok();
        }
    }
}

/// Headless Chromium with the console log kept. `--no-sandbox`: Chromium refuses to start as
/// root otherwise (CI and these machines run as root).
fn capabilities(script: Script) -> Capabilities {
    let mut chrome_options = json!({
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1440,900"],
    });
    if script == Script::Off {
        // 2 is "block", as an administrator's policy sets it.
        chrome_options["prefs"] = json!({"profile.managed_default_content_settings.javascript": 2});
    }
    // Debian's /usr/bin/chromium is a shell wrapper; point at the browser itself when there.
    let debian_binary = "/usr/lib/chromium/chromium";
    if std::path::Path::new(debian_binary).exists() {
        chrome_options["binary"] = json!(debian_binary);
    }
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": chrome_options,
        "goog:loggingPrefs": {"browser": "ALL"},
    });
    capabilities.as_object().unwrap().clone()
}

/// `$CARGO_TARGET_DIR/screenshots`, or the workspace's `target/screenshots`.
pub fn screenshot_directory() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("screenshots")
}
