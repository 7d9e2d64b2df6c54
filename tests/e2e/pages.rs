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

/// Finds the element `css` and does `act` with it. The operator page re-renders its tables every 2 s, so
/// an element found just before a refresh can be gone by the time it is used (a stale reference, seen
/// on a busy machine): it is then found again, until `WAIT`.
async fn on_fresh<T, F: std::future::Future<Output = Result<T, fantoccini::error::CmdError>>>(
    page: &Client,
    css: &str,
    act: impl Fn(fantoccini::elements::Element) -> F,
) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        let element = page.wait().at_most(WAIT).for_element(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
        match act(element).await {
            Ok(done) => return done,
            Err(e) if e.is_stale_element_reference() && Instant::now() < deadline => continue,
            Err(e) => panic!("{css}: {e}"),
        }
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
    let row = on_fresh(&page, "tr[data-room='arena/web-1']", async |room| room.text().await).await;
    assert!(row.contains("arena") && row.contains("web-1") && row.contains("0.2.0"), "{row}");

    // A switch toggled in the page changes it on the server.
    on_fresh(&page, "input[data-switch='chat/feature:chat']", async |switch| switch.click().await).await;
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
    on_fresh(&page, "button[data-action='rollback'][data-plugin='arena']", async |button| button.click().await).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_player_page_joins_arena_and_a_key_press_moves_the_player() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &["arena", "chat"], &["--set", "plugins.chat.features=[\"chat\"]"]);
    let token = std::fs::read_to_string(dir.path().join("admin.token")).unwrap().trim().to_string();
    let admin = Admin::new(serve.admin, token);
    let host = serve.ws.trim_start_matches("ws://").trim_end_matches("/ws").to_string();

    let driver = start_driver();
    let page = browser(&driver).await;
    page.goto(&format!("http://{host}/play?room=web-play")).await.unwrap();
    page.wait().at_most(WAIT).for_element(Locator::Css("body[data-ready]")).await.unwrap();
    // The room's seed is a u64: the page shows it exactly (it would be rounded through a JS number).
    let rooms = admin.rooms().await.unwrap();
    let room = rooms.iter().find(|r| r.game == "arena" && r.room == "web-play").expect("the page's room is open");
    let shown = page.find(Locator::Css("body")).await.unwrap().attr("data-seed").await.unwrap().unwrap();
    assert_eq!(shown, room.seed.to_string(), "the seed survives JavaScript");

    // A key press moves the player; the page shows the server's answer.
    page.find(Locator::Css("#grid")).await.unwrap().send_keys("\u{E014}").await.unwrap(); // ArrowRight
    page.wait().at_most(WAIT).for_element(Locator::Css("body[data-moved='1']")).await.unwrap();
    let answer = page.find(Locator::Css("#answer")).await.unwrap().text().await.unwrap();
    assert!(answer.starts_with("moved #1 to ("), "{answer}");
    // The chat side joined too and shows what is said (typing "w", "a", "s" or "d" there moves no one).
    page.find(Locator::Css("#chat-text")).await.unwrap().send_keys("hello from the browser\n").await.unwrap();
    page.wait()
        .at_most(WAIT)
        .for_element(Locator::XPath("//div[@id='chat-lines']/div[contains(., 'hello from the browser')]"))
        .await
        .unwrap();
    let moved = page.find(Locator::Css("body")).await.unwrap().attr("data-moved").await.unwrap();
    assert_eq!(moved.as_deref(), Some("1"), "the w and s typed in the chat moved no one");
    std::fs::write(screenshot_dir().join("play.png"), page.screenshot().await.unwrap()).unwrap();
    page.close().await.unwrap();
    drop(serve);
}

/// In a fleet, the player page on host a joins a room placed on host b: the reference client follows the
/// `redirect` to b with its seat token, and the room runs there (PostgreSQL: `WARDEN_TEST_DATABASE_URL`).
/// Then host a's operator page shows the fleet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_player_page_follows_a_redirect_to_the_host_that_runs_its_room() {
    let Some(store) = warden_tests::TestStore::postgres("pages_fleet_redirect").await else { return };
    let start = |dir: &Path, id: &str| {
        let (url, id) = (format!("storage.url={:?}", store.url), format!("fleet.host_id={id:?}"));
        Serve::start(dir, &["arena"], &["--set", &url, "--set", "fleet.enabled=true", "--set", &id])
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (start(dir_a.path(), "a"), start(dir_b.path(), "b"));
    let admin_b = Admin::new(b.admin, std::fs::read_to_string(dir_b.path().join("admin.token")).unwrap().trim().to_string());
    // b serves rooms (so placement can choose it) ...
    until("b serves rooms", || async { admin_b.metrics().await.is_ok_and(|m| m.contains("\nwarden_serving 1\n")) }).await;
    // ... and a player's room on a (placed on the asking host while the loads tie) makes b the least
    // loaded, so the page's room goes to b.
    let deadline = Instant::now() + WAIT;
    let _held = loop {
        let attempt = async {
            let (mut tx, mut rx) = client::connect(&Endpoint::Ws(a.ws.clone(), Format::MsgPack)).await.map_err(|e| format!("{e:#}"))?;
            client::handshake(&mut tx, &mut rx, None, "arena", "on-a").await.map_err(|e| format!("{e:#}"))?;
            Ok::<_, String>((tx, rx))
        };
        match attempt.await {
            Ok(conn) => break conn,
            Err(e) => assert!(Instant::now() < deadline, "a serves rooms within {WAIT:?}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let driver = start_driver();
    let page = browser(&driver).await;
    let host_a = a.ws.trim_start_matches("ws://").trim_end_matches("/ws").to_string();
    page.goto(&format!("http://{host_a}/play?room=on-b")).await.unwrap();
    page.wait().at_most(WAIT).for_element(Locator::Css("body[data-ready]")).await.unwrap();
    let rooms = admin_b.rooms().await.unwrap();
    assert!(rooms.iter().any(|r| r.game == "arena" && r.room == "on-b"), "the page's room runs on b: {rooms:?}");
    page.find(Locator::Css("#grid")).await.unwrap().send_keys("\u{E014}").await.unwrap(); // ArrowRight
    page.wait().at_most(WAIT).for_element(Locator::Css("body[data-moved='1']")).await.unwrap();

    // The operator page of host a shows the fleet: both hosts live, the versions each has ready, the host
    // that runs the rollouts, and the rooms summed across the hosts (on-a on a, on-b on b).
    let token_a = std::fs::read_to_string(dir_a.path().join("admin.token")).unwrap().trim().to_string();
    page.goto(&format!("http://{}/", a.admin)).await.unwrap();
    page.wait().at_most(WAIT).for_element(Locator::Css("#token")).await.unwrap().send_keys(&token_a).await.unwrap();
    page.find(Locator::Css("#login-ok")).await.unwrap().click().await.unwrap();
    for host in ["a", "b"] {
        let row = page
            .wait()
            .at_most(WAIT)
            .for_element(Locator::XPath(&format!("//tr[@data-host='{host}'][contains(., 'arena 0.2.0')]")))
            .await
            .unwrap();
        let text = row.text().await.unwrap();
        assert!(text.contains("live"), "host {host} in the page's fleet table: {text}");
    }
    let summary = page.find(Locator::Css("#fleet-summary")).await.unwrap().text().await.unwrap();
    assert!(summary.contains("Answered by host a") && summary.contains("rollouts run by host"), "{summary}");
    page.wait()
        .at_most(WAIT)
        .for_element(Locator::XPath("//div[@data-plugin='arena']//tr[@data-version='0.2.0']/td[4][.='2']"))
        .await
        .unwrap();
    page.close().await.unwrap();
    drop((a, b));
}

#[test]
fn the_reference_client_keeps_64_bit_integers_exact() {
    // The page's MessagePack codec, run by the machine's Node.js: u64 and i64 above 2^53 come back as
    // BigInt, exactly; small ones as numbers.
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("../host/src/net/play/warden-client.js");
    let script = format!(
        r#"const {{ MsgPack }} = require({path:?});
        const big = 18446744073709551557n, neg = -9007199254740993n;
        const back = MsgPack.decode(MsgPack.encode({{ seed: big, nonce: neg, small: 42, name: "arena", data: new Uint8Array([1, 2]) }}));
        if (back.seed !== big || back.nonce !== neg || back.small !== 42 || back.name !== "arena" || back.data[1] !== 2) {{
            console.error(JSON.stringify(back, (k, v) => typeof v === "bigint" ? v.toString() : v)); process.exit(1);
        }}
        console.log("exact");"#,
        path = client.display().to_string()
    );
    let out = Command::new("node").arg("-e").arg(&script).output().expect("node runs (Node.js is on the machine)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "exact");
}
