//! Failover under `kill -9`: three real `warden serve` hosts in a fleet on one PostgreSQL
//! (`WARDEN_TEST_DATABASE_URL`; skipped, and listed as skipped, without it), with `warden bots` playing
//! arena against all three (each bot starts on one host, follows `redirect`s to the host that runs its
//! room, and when its connection ends connects again to the next host, rejoins and resends the moves not
//! answered yet). Ten times, the host that runs the most rooms is SIGKILLed and started again. Every room
//! it ran must answer again on another host, and in the end the checker compares what each bot was
//! answered with the rooms' states, on the hosts and in the store (checkpoint + durable journal, read
//! back by a host started alone after all three were killed): every answered move is in its room exactly
//! once, none lost and none applied twice, and no tick of any room is stored twice.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use warden::commands::bots::{self, BotGame, BotsArgs};
use warden::net::client::Endpoint;
use warden::net::envelope::Format;
use warden::storage::postgres::PgStore;
use warden_tests::{Serve, TestStore};

const SECRET: &str = "fleet-failover-secret-0001";
const PLAYERS: usize = 24;
const ROOM_SIZE: usize = 4;
const ROOMS: usize = PLAYERS / ROOM_SIZE;
const KILLS: usize = 10;
const HOSTS: [&str; 3] = ["a", "b", "c"];

/// A host of the fleet: its directory, its fixed WebSocket port (a restarted host is found where it was),
/// and the running process.
struct Host {
    id: &'static str,
    dir: tempfile::TempDir,
    port: u16,
    serve: Option<Serve>,
}

impl Host {
    fn args(&self, url: &str) -> Vec<String> {
        let sets = [
            format!("storage.url={url:?}"),
            format!("auth.secret={SECRET:?}"),
            format!("net.ws_addr=\"127.0.0.1:{}\"", self.port),
            "fleet.enabled=true".into(),
            format!("fleet.host_id={:?}", self.id),
            // Generous times: a loaded machine's delays must not lapse a lease nothing cut. A host that
            // dies is seen dead by its closed session, not by its lease running out.
            "fleet.heartbeat_ms=250".into(),
            "fleet.lease_ms=6000".into(),
            "fleet.lease_margin_ms=2000".into(),
            // Checkpoints come and go during the test: rooms resume from checkpoint + journal.
            "rooms.checkpoint_every_ms=1000".into(),
        ];
        sets.into_iter().flat_map(|s| ["--set".to_string(), s]).collect()
    }

    async fn start(&mut self, url: &str) {
        let (dir, args) = (self.dir.path().to_path_buf(), self.args(url));
        let serve = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Serve::start(&dir, &["arena"], &args)
        })
        .await
        .unwrap();
        self.serve = Some(serve);
    }

    fn kill(&mut self) {
        if let Some(mut serve) = self.serve.take() {
            serve.kill();
        }
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint::Ws(format!("ws://127.0.0.1:{}/ws", self.port), Format::MsgPack)
    }

    fn admin(&self) -> warden::admin::Client {
        let token = std::fs::read_to_string(self.dir.path().join("admin.token")).unwrap().trim().to_string();
        warden::admin::Client::new(self.serve.as_ref().expect("running").admin, token)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Each room's live owner (by host id), as the database has it.
async fn owners(pg: &PgStore) -> BTreeMap<String, String> {
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

async fn live(pg: &PgStore, id: &str) -> bool {
    pg.hosts().await.unwrap().iter().any(|h| h.id == id && h.live)
}

/// Waits (up to 60 s) until `done` holds.
async fn wait_for<F: std::future::Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(Instant::now() < deadline, "{what} within 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every player's (moves, last move applied) in arena room `room`, dumped from the host that runs it
/// (waiting, up to 60 s, for it to be open there).
async fn room_state(pg: &PgStore, hosts: &[Host], room: &str) -> BTreeMap<String, (u64, u64)> {
    use base64::Engine as _;
    let deadline = Instant::now() + Duration::from_secs(60);
    let snapshot = loop {
        let owner = owners(pg).await.get(room).cloned();
        let host = owner.and_then(|id| hosts.iter().find(|h| h.id == id && h.serve.is_some()));
        if let Some(host) = host
            && let Ok(dump) = host.admin().room_dump("arena", room).await
            && let Some(snapshot) = dump.snapshot
        {
            break snapshot;
        }
        assert!(Instant::now() < deadline, "room {room} is open on its owner within 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let bytes = base64::engine::general_purpose::STANDARD.decode(snapshot).unwrap();
    let state: arena::Arena = rmp_serde::from_slice(&bytes).unwrap();
    // Those it handed `on-leave` when it resumed are departed until they rejoin.
    state.departed.into_iter().chain(state.players).map(|(id, p)| (id, (p.moves, p.last_seq))).collect()
}

/// Checks every bot's answered moves against the rooms' states: each player's moves are exactly the
/// moves it sent (all answered), applied once each, in order.
async fn check_rooms(pg: &PgStore, hosts: &[Host], sent: &BTreeMap<String, u64>, when: &str) {
    let mut seen = BTreeMap::new();
    for room in 0..ROOMS {
        seen.extend(room_state(pg, hosts, &format!("failover-{room}")).await);
    }
    let wrong: Vec<String> = sent
        .iter()
        .filter(|(player, n)| seen.get(*player) != Some(&(**n, **n)))
        .map(|(player, n)| format!("{player}: sent and answered {n}, room has (moves, last) {:?}", seen.get(player)))
        .collect();
    assert!(wrong.is_empty(), "{when}: every answered move is in its room, once each:\n{}", wrong.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_hosts_under_bot_load_loses_no_answered_move_and_applies_none_twice() {
    let Some(store) = TestStore::postgres("fleet_failover").await else { return };
    let pg = PgStore::open(&store.url).await.unwrap();
    let mut hosts: Vec<Host> =
        HOSTS.iter().map(|id| Host { id, dir: tempfile::tempdir().unwrap(), port: free_port(), serve: None }).collect();
    for host in &mut hosts {
        host.start(&store.url).await;
    }
    for id in HOSTS {
        wait_for(&format!("host {id} is live"), || live(&pg, id)).await;
    }

    let stop = CancellationToken::new();
    let args =
        BotsArgs::new(BotGame::Arena, PLAYERS, ROOM_SIZE, 5.0, 600.0, "failover").fleet(vec![hosts[1].endpoint(), hosts[2].endpoint()]);
    let driver = tokio::spawn({
        let (stop, endpoint) = (stop.clone(), hosts[0].endpoint());
        async move { bots::drive_until(&args, endpoint, Some(SECRET.as_bytes().to_vec()), stop).await }
    });
    wait_for("every room is placed", || async { owners(&pg).await.len() == ROOMS }).await;

    let mut failovers = Vec::new();
    for kill in 0..KILLS {
        // Let play go on, then kill the host that runs the most rooms.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let before = owners(&pg).await;
        let victim = *HOSTS.iter().max_by_key(|id| before.values().filter(|h| h == id).count()).unwrap();
        let moved: Vec<String> = before.iter().filter(|(_, h)| *h == victim).map(|(r, _)| r.clone()).collect();
        let host = hosts.iter_mut().find(|h| h.id == victim).unwrap();
        let killed_at = Instant::now();
        host.kill();
        // Every room it ran gets a live owner again (the bots' joins place them, or the live hosts'
        // scans take them over), on another host.
        wait_for(&format!("kill {kill}: the rooms of {victim} have live owners again"), || async {
            let now = owners(&pg).await;
            moved.iter().all(|r| now.get(r).is_some_and(|h| h != victim))
        })
        .await;
        failovers.push(killed_at.elapsed());
        host.start(&store.url).await;
        wait_for(&format!("kill {kill}: {victim} is back"), || live(&pg, victim)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.cancel();
    let report = tokio::time::timeout(Duration::from_secs(180), driver).await.expect("the bots finish").unwrap().unwrap();
    eprintln!("failover: {report:#?}\nrooms owned again after each kill: {failovers:?}");
    assert_eq!(report.connected, PLAYERS as u64);
    assert_eq!(report.failed_connections, 0, "every bot got back into its room after every kill");
    assert_eq!(report.lost, 0, "every move was answered");
    assert_eq!(report.duplicated, 0, "no move was answered twice");
    assert_eq!(report.score_resets, 0, "no room went back on a score it had answered");
    assert!(report.reconnects >= KILLS as u64, "each kill cut bots off: {} reconnects", report.reconnects);
    assert!(report.redirects > 0, "bots were sent to the hosts that run their rooms");
    assert_eq!(report.moves.len(), PLAYERS);

    // What the bots were answered is in the rooms, on the hosts that run them now.
    check_rooms(&pg, &hosts, &report.moves, "on the hosts").await;
    // One writer per room: no tick of any room stored twice with different calls.
    for room in 0..ROOMS {
        let mut copies = std::collections::HashMap::<i64, Vec<u8>>::new();
        for (tick, data) in pg.journal_copies("arena", &format!("failover-{room}")).await.unwrap() {
            if let Some(other) = copies.insert(tick, data.clone()) {
                assert_eq!(other, data, "failover-{room}: tick {tick} was stored by two hosts");
            }
        }
    }
    // And in the store: all three die; one host started alone takes every room over from checkpoint and
    // durable journal.
    for host in &mut hosts {
        host.kill();
    }
    hosts[0].start(&store.url).await;
    check_rooms(&pg, &hosts, &report.moves, "from the store").await;
}
