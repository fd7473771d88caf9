//! A real Chromium driven through chromedriver (Debian's `chromium` and
//! `chromium-driver`; scripts/test installs them when missing).

use std::net::TcpListener;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use pagesync_testkit::wait::until_some;
use serde_json::json;
use tokio::process::{Child, Command};

/// How long the DOM may take to show what a test waits for.
const PATIENCE: Duration = Duration::from_secs(20);

pub struct Browser {
    pub client: Client,
    _driver: Child,
}

fn free_port() -> u16 {
    // The OS picks the port; chromedriver takes it over a moment later.
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    pub async fn start() -> Self {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver must be installed (Debian: chromium chromium-driver; scripts/test installs them)");
        let url = format!("http://127.0.0.1:{port}");
        let caps = json!({
            "goog:chromeOptions": {
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-background-networking", "--window-size=1280,900"],
            }
        });
        let caps = caps.as_object().unwrap().clone();
        let client = until_some(PATIENCE, "chromedriver to answer", || async {
            // Plain HTTP to chromedriver on loopback: no TLS stack to build.
            ClientBuilder::new(HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
                .ok()
        })
        .await;
        Self {
            client,
            _driver: driver,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    pub async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    /// Waits until the element's text contains `text`; returns the text.
    pub async fn text_contains(&self, css: &str, text: &str) -> String {
        until_some(PATIENCE, &format!("{css} to contain {text:?}"), || async {
            let el = self.client.find(Locator::Css(css)).await.ok()?;
            let t = el.text().await.ok()?;
            t.contains(text).then_some(t)
        })
        .await
    }

    /// Waits until `css` matches nothing visible with `text`.
    pub async fn text_lacks(&self, css: &str, text: &str) {
        until_some(PATIENCE, &format!("{css} to lack {text:?}"), || async {
            let el = self.client.find(Locator::Css(css)).await.ok()?;
            let t = el.text().await.ok()?;
            (!t.contains(text)).then_some(())
        })
        .await
    }

    /// Sets a cookie for the current origin (navigate there first).
    pub async fn add_cookie(&self, pair: &str) {
        let host = self.client.current_url().await.unwrap();
        let host = host.host_str().unwrap();
        // Chrome refuses a SameSite=None cookie that is not Secure: say Lax.
        let c = fantoccini::cookies::Cookie::parse(format!(
            "{pair}; Path=/; Domain={host}; SameSite=Lax; HttpOnly"
        ))
        .unwrap()
        .into_owned();
        self.client.add_cookie(c).await.unwrap();
    }

    /// A screenshot into `$PAGESYNC_SCREENSHOTS/<name>.png` when that is set
    /// (docs/console.md: how the README's screenshots are made).
    pub async fn screenshot(&self, name: &str) {
        if let Some(dir) = std::env::var_os("PAGESYNC_SCREENSHOTS") {
            let png = self.client.screenshot().await.unwrap();
            std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
        }
    }

    pub async fn close(self) {
        self.client.close().await.unwrap();
    }
}
