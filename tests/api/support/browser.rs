//! A real headless Chromium for the page tests, driven over WebDriver: the test starts its own
//! chromedriver (`TG_TEST_CHROMEDRIVER`, which `scripts/test.sh` sets) on a free port, waits
//! for its `/status`, and ends it and its browser when done. Waits poll the page; nothing here
//! sleeps a fixed time.
//!
//! `TG_SCREENSHOTS=1` makes [`Browser::screenshot`] write `docs/screenshots/NAME.png`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::actions::{InputSource as _, KeyAction, KeyActions};
use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tempfile::TempDir;

use super::{PATIENCE, eventually};

/// The variable naming the chromedriver binary.
const DRIVER_VAR: &str = "TG_TEST_CHROMEDRIVER";

/// A browser session of its own, in a fresh profile.
pub(crate) struct Browser {
    driver: Child,
    client: Option<Client>,
    _profile: TempDir,
}

fn driver_path() -> String {
    std::env::var(DRIVER_VAR).unwrap_or_else(|_| {
        panic!(
            "{DRIVER_VAR} is not set: run the tests with scripts/test.sh, which installs Debian's \
             chromium and chromium-driver when missing and sets it"
        )
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("finding a free port")
        .port()
}

/// Starts chromedriver on `port` in a process group of its own, so it and the browser it
/// starts can be ended together.
fn start_driver(port: u16) -> Child {
    use std::os::unix::process::CommandExt as _;
    Command::new(driver_path())
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("starting chromedriver")
}

/// Waits until chromedriver on `port` says it is ready; `false` when it exited first.
async fn driver_ready(driver: &mut Child, port: u16) -> bool {
    let client = super::app::client_trusting(&[]);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Ok(Some(_)) = driver.try_wait() {
            return false;
        }
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/status"))
            .send()
            .await
            && let Ok(status) = r.json::<Value>().await
            && status["value"]["ready"] == json!(true)
        {
            return true;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "chromedriver never became ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Browser {
    /// A browser with a desktop-sized window.
    pub(crate) async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// A browser that prefers a dark colour scheme, as a system set to dark mode does.
    pub(crate) async fn start_dark() -> Self {
        Self::start_with(&[
            "--force-dark-mode",
            "--blink-settings=preferredColorScheme=0",
        ])
        .await
    }

    async fn start_with(extra: &[&str]) -> Self {
        let profile = tempfile::tempdir().expect("a profile dir");
        // The port may be taken between choosing and binding it: try a few.
        for _ in 0..5 {
            let port = free_port();
            let mut driver = start_driver(port);
            if !driver_ready(&mut driver, port).await {
                continue;
            }
            let mut args = vec![
                "--headless=new".to_owned(),
                "--no-sandbox".to_owned(),
                "--disable-gpu".to_owned(),
                "--disable-dev-shm-usage".to_owned(),
                "--no-first-run".to_owned(),
                "--disable-extensions".to_owned(),
                "--lang=en-US".to_owned(),
                "--window-size=1280,900".to_owned(),
                format!("--user-data-dir={}", profile.path().display()),
            ];
            args.extend(extra.iter().map(|a| (*a).to_owned()));
            let capabilities = json!({ "goog:chromeOptions": { "args": args } });
            let Value::Object(capabilities) = capabilities else {
                unreachable!()
            };
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            let client = ClientBuilder::new(connector)
                .capabilities(capabilities)
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
                .expect("opening a browser session");
            return Self {
                driver,
                client: Some(client),
                _profile: profile,
            };
        }
        panic!("chromedriver could not be started on a free port");
    }

    /// The WebDriver client.
    pub(crate) fn client(&self) -> &Client {
        self.client.as_ref().expect("the session is open")
    }

    /// Opens `url` and waits for the page to load.
    pub(crate) async fn goto(&self, url: &str) {
        self.client()
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    /// The current address.
    pub(crate) async fn url(&self) -> reqwest::Url {
        self.client().current_url().await.expect("the current URL")
    }

    /// Sets Bitbucket's session cookie for the site showing now, as Bitbucket sets it.
    pub(crate) async fn set_session(&self, value: &str) {
        let host = self
            .url()
            .await
            .host_str()
            .expect("a page with a host")
            .to_owned();
        let cookie =
            format!("BITBUCKETSESSIONID={value}; Path=/; Domain={host}; HttpOnly; SameSite=Lax");
        let cookie = fantoccini::cookies::Cookie::parse(cookie)
            .expect("a cookie")
            .into_owned();
        self.client()
            .add_cookie(cookie)
            .await
            .expect("setting the session cookie");
    }

    /// Waits for an element `css` finds.
    pub(crate) async fn find(&self, css: &str) -> Element {
        let found = self
            .client()
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await;
        match found {
            Ok(element) => element,
            Err(e) => panic!("no element {css}: {e}\n{}", self.text().await),
        }
    }

    /// Waits for an element the XPath `xpath` finds.
    pub(crate) async fn find_xpath(&self, xpath: &str) -> Element {
        let found = self
            .client()
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::XPath(xpath))
            .await;
        match found {
            Ok(element) => element,
            Err(e) => panic!("no element {xpath}: {e}\n{}", self.text().await),
        }
    }

    /// Every element `css` finds now.
    pub(crate) async fn all(&self, css: &str) -> Vec<Element> {
        self.client()
            .find_all(Locator::Css(css))
            .await
            .expect("finding elements")
    }

    /// The form control whose label reads `label`, within `scope` (an XPath such as
    /// `//form[@id='create']`; empty for the whole page).
    pub(crate) async fn field(&self, scope: &str, label: &str) -> Element {
        let label = self
            .find_xpath(&format!(
                "{scope}//label[normalize-space()={}]",
                xpath_literal(label)
            ))
            .await;
        let id = label
            .attr("for")
            .await
            .expect("reading for")
            .expect("a label for a control");
        self.find(&format!("#{id}")).await
    }

    /// The button reading `text`, within `scope` (an XPath; empty for the whole page).
    pub(crate) async fn button(&self, scope: &str, text: &str) -> Element {
        self.find_xpath(&format!(
            "{scope}//button[normalize-space()={}]",
            xpath_literal(text)
        ))
        .await
    }

    /// Where the link reading `text` goes, as its `href` says.
    pub(crate) async fn link_href(&self, text: &str) -> String {
        let link = self
            .find_xpath(&format!("//a[normalize-space()={}]", xpath_literal(text)))
            .await;
        link.attr("href")
            .await
            .expect("reading href")
            .expect("a link with an href")
    }

    /// Presses and releases `key` where the focus is.
    pub(crate) async fn press(&self, key: Key) {
        let keys = KeyActions::new("keyboard".to_owned())
            .then(KeyAction::Down { value: key.into() })
            .then(KeyAction::Up { value: key.into() });
        self.client()
            .perform_actions(keys)
            .await
            .expect("pressing a key");
    }

    /// Types `text` where the focus is, key by key.
    pub(crate) async fn type_text(&self, text: &str) {
        let keys = text
            .chars()
            .fold(KeyActions::new("keyboard".to_owned()), |keys, c| {
                keys.then(KeyAction::Down { value: c })
                    .then(KeyAction::Up { value: c })
            });
        self.client().perform_actions(keys).await.expect("typing");
    }

    /// What has the focus: its id, or else its text.
    pub(crate) async fn focused(&self) -> String {
        let script = "const e = document.activeElement; return e.id || e.textContent.trim();";
        self.run(script, Vec::new())
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The page's visible text.
    pub(crate) async fn text(&self) -> String {
        match self.client().find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits until the page's text contains `what`.
    pub(crate) async fn wait_for_text(&self, what: &str) {
        let found = self
            .client()
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::XPath(&format!(
                "//body[contains(normalize-space(.), {})]",
                xpath_literal(what)
            )))
            .await;
        if let Err(e) = found {
            panic!("the page never showed {what:?}: {e}\n{}", self.text().await);
        }
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its result.
    pub(crate) async fn run(&self, script: &str, args: Vec<Value>) -> Value {
        self.client()
            .execute(script, args)
            .await
            .expect("running a script")
    }

    /// Polls `script` until it returns `true`.
    pub(crate) async fn wait_until(&self, what: &str, script: &str) {
        eventually(what, async || {
            (self.run(script, Vec::new()).await == json!(true)).then_some(())
        })
        .await;
    }

    /// Resizes the window so the page's viewport is `width` CSS pixels wide.
    pub(crate) async fn set_viewport_width(&self, width: u32) {
        let client = self.client();
        client
            .set_window_size(width, 800)
            .await
            .expect("resizing the window");
        let inner = self.run("return window.innerWidth;", Vec::new()).await;
        let inner = inner.as_u64().expect("a width") as u32;
        if inner != width {
            client
                .set_window_size(2 * width - inner, 800)
                .await
                .expect("resizing the window");
        }
        let inner = self.run("return window.innerWidth;", Vec::new()).await;
        assert_eq!(
            inner,
            json!(width),
            "the viewport could not be made {width} px wide"
        );
    }

    /// Writes a screenshot of the whole page (the window made as tall as the page for it) to
    /// `docs/screenshots/{name}.png` when `TG_SCREENSHOTS` is set.
    pub(crate) async fn screenshot(&self, name: &str) {
        if std::env::var_os("TG_SCREENSHOTS").is_none() {
            return;
        }
        let client = self.client();
        let (width, height) = client.get_window_size().await.expect("the window size");
        let size = "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight];";
        let size = self.run(size, Vec::new()).await;
        let page = size[0].as_u64().unwrap_or(height).min(4000);
        let frame = size[1].as_u64().unwrap_or(0);
        let (width, height) = (
            u32::try_from(width).unwrap(),
            u32::try_from(height).unwrap(),
        );
        client
            .set_window_size(width, u32::try_from(page + frame).unwrap())
            .await
            .expect("resizing the window");
        let png = client.screenshot().await.expect("taking a screenshot");
        client
            .set_window_size(width, height)
            .await
            .expect("resizing the window back");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
        std::fs::create_dir_all(&dir).expect("creating docs/screenshots");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("writing a screenshot");
    }

    /// Ends the session, then chromedriver.
    pub(crate) async fn finish(mut self) {
        if let Some(client) = self.client.take() {
            let _: Result<(), CmdError> = client.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: chromedriver and every browser process it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.wait();
    }
}

/// `text` as an XPath string literal.
fn xpath_literal(text: &str) -> String {
    if !text.contains('\'') {
        return format!("'{text}'");
    }
    let parts: Vec<String> = text.split('\'').map(|p| format!("'{p}'")).collect();
    format!("concat({})", parts.join(", \"'\", "))
}
