//! The fleet test rig, shared by the fleet's end-to-end tests and its failover benchmark
//! (`host/benches/failover.rs` includes this file): hosts as real `warden serve` processes on fixed
//! ports (a restarted host is found where it was) against one PostgreSQL, and what the database says
//! about them.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use warden::net::client::Endpoint;
use warden::net::envelope::Format;
use warden::storage::postgres::PgStore;
use warden_tests::Serve;

/// A host of the fleet: its id, directory, fixed WebSocket port, and the running process.
pub struct Host {
    pub id: &'static str,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub serve: Option<Serve>,
}

impl Host {
    /// Host `id`, not started.
    pub fn new(id: &'static str) -> Host {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Host { id, dir: tempfile::tempdir().unwrap(), port, serve: None }
    }

    /// Starts `warden serve` with arena in the fleet on `url`, players' tokens signed with `secret`, and
    /// `extra` settings (`key=value`).
    pub async fn start(&mut self, url: &str, secret: &str, extra: &[&str]) {
        let mut sets = vec![
            format!("storage.url={url:?}"),
            format!("auth.secret={secret:?}"),
            format!("net.ws_addr=\"127.0.0.1:{}\"", self.port),
            "fleet.enabled=true".into(),
            format!("fleet.host_id={:?}", self.id),
        ];
        sets.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<String> = sets.into_iter().flat_map(|s| ["--set".to_string(), s]).collect();
        let dir = self.dir.path().to_path_buf();
        let serve = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Serve::start(&dir, &["arena"], &args)
        })
        .await
        .unwrap();
        self.serve = Some(serve);
    }

    /// SIGKILL, if it runs.
    pub fn kill(&mut self) {
        if let Some(mut serve) = self.serve.take() {
            serve.kill();
        }
    }

    /// Its process id.
    pub fn pid(&self) -> String {
        self.serve.as_ref().expect("running").child.id().to_string()
    }

    /// Where players reach it.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::Ws(format!("ws://127.0.0.1:{}/ws", self.port), Format::MsgPack)
    }

    /// Its admin endpoint.
    pub fn admin(&self) -> warden::admin::Client {
        let token = std::fs::read_to_string(self.dir.path().join("admin.token")).unwrap().trim().to_string();
        warden::admin::Client::new(self.serve.as_ref().expect("running").admin, token)
    }
}

/// Each arena room's live owner (by host id), as the database has it.
pub async fn owners(pg: &PgStore) -> BTreeMap<String, String> {
    let mut tx = pg.begin().await.unwrap();
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT o.room, o.host_id FROM room_owners o JOIN live_hosts h ON h.id = o.host_id AND h.incarnation = o.incarnation
         WHERE o.game = 'arena'",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    rows.into_iter().collect()
}

/// Whether host `id` is live.
pub async fn live(pg: &PgStore, id: &str) -> bool {
    pg.hosts().await.unwrap().iter().any(|h| h.id == id && h.live)
}

/// Waits (up to 60 s) until `done` holds.
pub async fn wait_for<F: std::future::Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(Instant::now() < deadline, "{what} within 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The host of `hosts` whose id is `id`.
pub fn host<'a>(hosts: &'a mut [Host], id: &str) -> &'a mut Host {
    hosts.iter_mut().find(|h| h.id == id).unwrap_or_else(|| panic!("host {id}"))
}

/// The host that owns the most rooms of `owners`, and those rooms.
pub fn busiest(owners: &BTreeMap<String, String>, ids: &[&'static str]) -> (&'static str, Vec<String>) {
    let id = *ids.iter().max_by_key(|id| owners.values().filter(|h| h == *id).count()).unwrap();
    (id, owners.iter().filter(|(_, h)| *h == id).map(|(r, _)| r.clone()).collect())
}
