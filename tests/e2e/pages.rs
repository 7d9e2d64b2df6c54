//! The web pages in a real browser: Debian's Chromium, headless, driven through chromedriver (WebDriver)
//! by `fantoccini`, against a real `warden serve`. The operator page loads with the token, lists the
//! live rooms, turns a switch off (checked through the admin API) and rolls a version back (confirming
//! the dialog). Screenshots go to `<target>/screenshots/`.
//!
//! Chromium and chromedriver are installed (Debian's `chromium` and `chromium-driver`) by
//! `scripts/test`; when they are missing and this runs as root, the test installs them itself.

use fantoccini::{Client, ClientBuilder, Locator};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use warden::admin::Client as Admin;
use warden::net::client::{self, Endpoint};
use warden::net::envelope::Format;
use warden::runtime::manifest;
use warden_tests::{Serve, target_dir, wasm_bytes};

const WAIT: Duration = Duration::from_secs(60);
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free port, killed when dropped.
struct Driver(Child, u16);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ensure_chromium() {
    if Path::new(CHROMEDRIVER).exists() && Path::new("/usr/bin/chromium").exists() {
        return;
    }
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    assert!(root, "Chromium is missing: install Debian's chromium and chromium-driver (scripts/test does)");
    let install = || Command::new("apt-get").args(["install", "-y", "-q", "chromium", "chromium-driver"]).status().unwrap().success();
    if !install() {
        assert!(Command::new("apt-get").args(["update", "-q"]).status().unwrap().success());
        assert!(install(), "apt-get install chromium chromium-driver failed");
    }
}

fn start_driver() -> Driver {
    ensure_chromium();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(CHROMEDRIVER).arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver(child, port)
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1100"]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.1))
        .await
        .expect("a Chromium session")
}

fn screenshot_dir() -> PathBuf {
    let dir = target_dir().join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits until `f` holds.
async fn until<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    let deadline = Instant::now() + WAIT;
    while !f().await {
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Puts `arena` stamped as `version` into the plugin directory (dev mode: unsigned is accepted).
fn drop_version(dir: &Path, version: &str) {
    let bytes = wasm_bytes("arena");
    let mut m = manifest::read(&bytes).unwrap();
    m.version = version.into();
    let temp = dir.join("plugins").join(format!(".arena-{version}.tmp"));
    std::fs::write(&temp, manifest::stamp(&bytes, &m)).unwrap();
    std::fs::rename(&temp, dir.join("plugins").join(format!("arena-{version}.wasm"))).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_page_shows_live_rooms_switches_a_feature_and_rolls_a_version_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let serve = Serve::start(
        d,
        &["arena", "chat"],
        &["--set", "plugins.chat.features=[\"chat\"]", "--set", "rollout.probation_ms=600000", "--set", "deploy.settle_ms=100"],
    );
    let token = std::fs::read_to_string(d.join("admin.token")).unwrap().trim().to_string();
    let admin = Admin::new(serve.admin, token.clone());
    // A player in a live room.
    let ws = Endpoint::Ws(serve.ws.clone(), Format::MsgPack);
    let (mut tx, mut rx) = client::connect(&ws).await.unwrap();
    client::handshake(&mut tx, &mut rx, None, "arena", "web-1").await.unwrap();

    let driver = start_driver();
    let page = browser(&driver).await;
    page.goto(&format!("http://{}/", serve.admin)).await.unwrap();
    // The token is asked once.
    page.wait().at_most(WAIT).for_element(Locator::Css("#token")).await.unwrap().send_keys(&token).await.unwrap();
    page.find(Locator::Css("#login-ok")).await.unwrap().click().await.unwrap();
    page.wait().at_most(WAIT).for_element(Locator::Css("body[data-loaded]")).await.unwrap();
    let room = page.wait().at_most(WAIT).for_element(Locator::Css("tr[data-room='arena/web-1']")).await.unwrap();
    let row = room.text().await.unwrap();
    assert!(row.contains("arena") && row.contains("web-1") && row.contains("0.2.0"), "{row}");

    // A switch toggled in the page changes it on the server.
    page.find(Locator::Css("input[data-switch='chat/feature:chat']")).await.unwrap().click().await.unwrap();
    until("the page's switch reached the server", || async {
        let status = admin.status().await.unwrap();
        let chat = status.plugins.iter().find(|p| p.name == "chat").unwrap();
        chat.switches.iter().any(|s| s.switch == "feature:chat" && !s.on)
    })
    .await;

    // A new version on trial (a canary: a room has a player), rolled back with the page's button after
    // its confirmation.
    drop_version(d, "0.3.0");
    until("0.3.0 on trial", || async {
        admin.status().await.unwrap().plugins.iter().any(|p| p.versions.iter().any(|v| v.version == "0.3.0" && v.state == "canary"))
    })
    .await;
    page.wait().at_most(WAIT).for_element(Locator::Css("div[data-plugin='arena'] tr[data-version='0.3.0']")).await.unwrap();
    std::fs::write(screenshot_dir().join("operator.png"), page.screenshot().await.unwrap()).unwrap();
    page.find(Locator::Css("button[data-action='rollback'][data-plugin='arena']")).await.unwrap().click().await.unwrap();
    let question = page.get_alert_text().await.unwrap();
    assert!(question.contains("Roll arena back?"), "{question}");
    page.accept_alert().await.unwrap();
    until("the page's rollback reached the server", || async {
        admin.status().await.unwrap().plugins.iter().any(|p| p.versions.iter().any(|v| v.version == "0.3.0" && v.state == "bad"))
    })
    .await;
    page.wait().at_most(WAIT).for_element(Locator::XPath("//li[contains(., 'operator rollback')]")).await.unwrap();
    page.close().await.unwrap();
    drop(serve);
}
