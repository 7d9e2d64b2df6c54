//! Failover under `kill -9`: three real `warden serve` hosts in a fleet on one PostgreSQL
//! (`WARDEN_TEST_DATABASE_URL`; skipped, and listed as skipped, without it), with `warden bots` playing
//! arena against all three (each bot starts on one host, follows `redirect`s to the host that runs its
//! room, and when its connection ends connects again to the next host, rejoins and resends the moves not
//! answered yet). Ten times, the host that runs the most rooms is SIGKILLed and started again. Every room
//! it ran must answer again on another host, and in the end the checker compares what each bot was
//! answered with the rooms' states, on the hosts and in the store (checkpoint + durable journal, read
//! back by a host started alone after all three were killed): every answered move is in its room exactly
//! once, none lost and none applied twice, and no tick of any room is stored twice.
//!
//! And a host paused with SIGSTOP for 10 s: its rooms are taken over once its lease runs out, and when
//! it resumes it sends its players nothing of them any more.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use warden::commands::bots::{self, BotGame, BotsArgs};
use warden::net::client::{self, Endpoint};
use warden::storage::postgres::PgStore;
use warden_tests::TestStore;

mod fleet_rig;
mod shared;
use fleet_rig::{Host, busiest, host, live, owners, wait_for};

const SECRET: &str = "fleet-failover-secret-0001";
const PLAYERS: usize = 24;
const ROOM_SIZE: usize = 4;
const ROOMS: usize = PLAYERS / ROOM_SIZE;
const KILLS: usize = 10;
const HOSTS: [&str; 3] = ["a", "b", "c"];

/// This test's settings, over the rig's: generous lease times (a loaded machine's delays must not lapse a
/// lease nothing cut: 6 s between the local deadline and a renewal's send, as PostgreSQL took 4.5 s for
/// a commit in a loaded CI run, which lapsed a 4 s margin before the pause test paused anything; a host that dies is seen dead by its closed session, not by its lease running
/// out), and checkpoints that come and go during the test (rooms resume from checkpoint + journal).
const SETTINGS: [&str; 4] =
    ["fleet.heartbeat_ms=250", "fleet.lease_ms=8000", "fleet.lease_margin_ms=2000", "rooms.checkpoint_every_ms=1000"];

async fn start(host: &mut Host, url: &str) {
    host.start(url, SECRET, &SETTINGS).await;
}

/// `warden bots` playing the fleet: PLAYERS players starting on each host in turn, until `stop`.
fn play(hosts: &[Host], stop: &CancellationToken) -> tokio::task::JoinHandle<Result<bots::Report, impl std::fmt::Debug + Send + use<>>> {
    let args =
        BotsArgs::new(BotGame::Arena, PLAYERS, ROOM_SIZE, 5.0, 600.0, "failover").fleet(vec![hosts[1].endpoint(), hosts[2].endpoint()]);
    let (stop, endpoint) = (stop.clone(), hosts[0].endpoint());
    tokio::spawn(async move { bots::drive_until(&args, endpoint, Some(SECRET.as_bytes().to_vec()), stop).await })
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
    let mut hosts: Vec<Host> = HOSTS.iter().map(|id| Host::new(id)).collect();
    for host in &mut hosts {
        start(host, &store.url).await;
    }
    for id in HOSTS {
        wait_for(&format!("host {id} is live"), || live(&pg, id)).await;
    }

    let stop = CancellationToken::new();
    let driver = play(&hosts, &stop);
    wait_for("every room is placed", || async { owners(&pg).await.len() == ROOMS }).await;

    let mut failovers = Vec::new();
    for kill in 0..KILLS {
        // Let play go on, then kill the host that runs the most rooms.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let before = owners(&pg).await;
        let (victim, moved) = busiest(&before, &HOSTS);
        let down = host(&mut hosts, victim);
        let killed_at = Instant::now();
        down.kill();
        // Every room it ran gets a live owner again (the bots' joins place them, or the live hosts'
        // scans take them over), on another host.
        wait_for(&format!("kill {kill}: the rooms of {victim} have live owners again"), || async {
            let now = owners(&pg).await;
            moved.iter().all(|r| now.get(r).is_some_and(|h| h != victim))
        })
        .await;
        failovers.push(killed_at.elapsed());
        start(down, &store.url).await;
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
    start(&mut hosts[0], &store.url).await;
    check_rooms(&pg, &hosts, &report.moves, "from the store").await;
}

/// What a watcher saw, with when.
type Log = Arc<Mutex<Vec<(Instant, Seen)>>>;

/// What a player connected to a host saw, in order: answers (`Msg`), notices and the end.
#[derive(Debug, PartialEq)]
enum Seen {
    Msg,
    Kicked(String),
    Closed,
}

/// A player on `endpoint` in `room` (following redirects) that moves every 50 ms while its last move was
/// answered (one move outstanding at most: a paused host finds one waiting, not a flood its rate limit
/// would close the connection for) and records every envelope that reaches it, with when, until its
/// connection ends or it is kicked.
async fn watcher(endpoint: Endpoint, player: String, room: String, log: Log) {
    use warden::net::client::Received;
    use warden::net::envelope::{ClientEnvelope, ServerEnvelope};
    let token = warden::net::auth::mint(SECRET.as_bytes(), &player, warden::net::auth::unix_now() + 3600);
    let mut joined = client::join_room(&endpoint, Some(token), "arena", &room).await.unwrap();
    let mut moves = tokio::time::interval(Duration::from_millis(50));
    let (mut seq, mut answered) = (0u64, 0u64);
    loop {
        tokio::select! {
            _ = moves.tick(), if answered == seq => {
                seq += 1;
                let data = rmp_serde::to_vec_named(&serde_json::json!({"type": "move", "dir": "up", "seq": seq})).unwrap();
                // The host may be paused: the bytes wait in its socket.
                let _ = joined.tx.send(&ClientEnvelope::Msg { data }).await;
            }
            received = joined.rx.recv() => {
                let seen = match received {
                    Ok(Received::Envelope(ServerEnvelope::Msg { data })) => {
                        if let Ok(arena::ArenaOut::Moved { seq: s, .. }) = rmp_serde::from_slice(&data) {
                            answered = answered.max(s);
                        }
                        Seen::Msg
                    }
                    Ok(Received::Envelope(ServerEnvelope::Kicked { reason })) => Seen::Kicked(reason),
                    Ok(Received::Envelope(_)) => continue,
                    Ok(Received::Closed(_)) | Err(_) => Seen::Closed,
                };
                let end = seen != Seen::Msg;
                log.lock().unwrap().push((Instant::now(), seen));
                if end {
                    return;
                }
            }
        }
    }
}

/// A host paused with SIGSTOP for 10 s loses its rooms to another (its lease runs out while its session
/// stays open); resumed, it sends its players nothing of those rooms any more: every answer and state it
/// computes on waking waits for a commit that is fenced, and it tells them the rooms moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_paused_for_ten_seconds_sends_nothing_after_its_rooms_were_taken_over() {
    let Some(store) = TestStore::postgres("fleet_paused").await else { return };
    let pg = PgStore::open(&store.url).await.unwrap();
    let mut hosts: Vec<Host> = ["a", "b"].iter().map(|id| Host::new(id)).collect();
    // a alone first: the players' rooms open there.
    start(&mut hosts[0], &store.url).await;
    wait_for("a is live", || live(&pg, "a")).await;
    let logs: Vec<Log> = (0..4).map(|_| Arc::default()).collect();
    let a = hosts[0].serve.as_ref().unwrap();
    wait_for("a serves rooms", || async { shared::health(a).await.0 == 200 }).await;
    for (i, log) in logs.iter().enumerate() {
        tokio::spawn(watcher(hosts[0].endpoint(), format!("p{i}"), format!("paused-{}", i / 2), log.clone()));
    }
    let answers = |log: &Log| log.lock().unwrap().iter().filter(|(_, s)| *s == Seen::Msg).count();
    wait_for("every player is answered on a", || {
        let ok = logs.iter().all(|l| answers(l) >= 5);
        async move { ok }
    })
    .await;
    start(&mut hosts[1], &store.url).await;
    wait_for("b is live", || live(&pg, "b")).await;

    let pid = hosts[0].pid();
    assert!(std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    let paused = Instant::now();
    wait_for("b takes the paused host's rooms over", || async {
        let owners = owners(&pg).await;
        ["paused-0", "paused-1"].iter().all(|r| owners.get(*r).is_some_and(|h| h == "b"))
    })
    .await;
    tokio::time::sleep((paused + Duration::from_secs(10)).saturating_duration_since(Instant::now())).await;
    let resumed = Instant::now();
    assert!(std::process::Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    wait_for("every player of a is told its room moved, or cut off", || {
        let ok = logs.iter().all(|l| l.lock().unwrap().last().is_some_and(|(at, s)| *at > resumed && *s != Seen::Msg));
        async move { ok }
    })
    .await;
    for (i, log) in logs.iter().enumerate() {
        let log = log.lock().unwrap();
        let late: Vec<&(Instant, Seen)> = log.iter().filter(|(at, s)| *at > resumed && *s == Seen::Msg).collect();
        assert!(late.is_empty(), "p{i}: the resumed host sent {} game messages after its rooms were taken over", late.len());
        let (_, last) = log.last().unwrap();
        if let Seen::Kicked(reason) = last {
            assert!(reason.contains("moved"), "p{i}: {reason}");
        }
    }
    // And nothing it did on waking reached the store: no tick of either room is stored twice.
    for room in ["paused-0", "paused-1"] {
        let mut copies = std::collections::HashMap::<i64, Vec<u8>>::new();
        for (tick, data) in pg.journal_copies("arena", room).await.unwrap() {
            if let Some(other) = copies.insert(tick, data.clone()) {
                assert_eq!(other, data, "{room}: tick {tick} was stored by two hosts");
            }
        }
    }
}

/// `warden drain HOST` under bot load: the host stops its rooms (their players are told they moved),
/// leaves the fleet and exits by itself; the rooms go on on the other hosts with every answered move in
/// them exactly once; the drain is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_host_hands_its_rooms_over_and_stops_with_no_answered_move_lost() {
    let Some(store) = TestStore::postgres("fleet_drain").await else { return };
    let pg = PgStore::open(&store.url).await.unwrap();
    let mut hosts: Vec<Host> = HOSTS.iter().map(|id| Host::new(id)).collect();
    for host in &mut hosts {
        start(host, &store.url).await;
    }
    let stop = CancellationToken::new();
    let driver = play(&hosts, &stop);
    wait_for("every room is placed", || async { owners(&pg).await.len() == ROOMS }).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = owners(&pg).await;
    let (victim, moved) = busiest(&before, &HOSTS);
    // One more player in one of its rooms, who records what it is told.
    let told: Log = Arc::default();
    tokio::spawn(watcher(hosts[0].endpoint(), "watch".into(), moved[0].clone(), told.clone()));
    wait_for("the watching player is answered", || {
        let ok = told.lock().unwrap().iter().any(|(_, s)| *s == Seen::Msg);
        async move { ok }
    })
    .await;

    let url = format!("storage.url={:?}", store.url);
    let drain = tokio::task::spawn_blocking(move || {
        std::process::Command::new(warden_tests::warden_bin()).args(["drain", victim, "--set", &url]).output().unwrap()
    })
    .await
    .unwrap();
    let said = String::from_utf8_lossy(&drain.stdout);
    assert!(drain.status.success(), "warden drain: {said}{}", String::from_utf8_lossy(&drain.stderr));
    assert!(said.contains("left the fleet"), "{said}");
    // The host exits by itself, cleanly.
    let mut serve = host(&mut hosts, victim).serve.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = serve.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the drained host exits within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "the drained host exits cleanly: {status}");
    wait_for("the watching player is told", || {
        let ok = told.lock().unwrap().last().is_some_and(|(_, s)| *s != Seen::Msg);
        async move { ok }
    })
    .await;
    let last = told.lock().unwrap().last().map(|(_, s)| format!("{s:?}"));
    assert!(
        last.as_deref().is_some_and(|s| s.contains("moved") && s.contains("draining")),
        "its players are told the room moved: {last:?}"
    );
    wait_for("the drained host's rooms have live owners again", || async {
        let now = owners(&pg).await;
        moved.iter().all(|r| now.get(r).is_some_and(|h| h != victim))
    })
    .await;

    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.cancel();
    let report = tokio::time::timeout(Duration::from_secs(180), driver).await.expect("the bots finish").unwrap().unwrap();
    assert_eq!((report.failed_connections, report.lost, report.duplicated, report.score_resets), (0, 0, 0, 0), "{report:#?}");
    assert!(report.reconnects >= ROOM_SIZE as u64, "the drained host's players joined again elsewhere: {report:#?}");
    check_rooms(&pg, &hosts, &report.moves, "after the drain").await;
    let audit = warden::storage::Store::Postgres(pg.clone()).audit_log(50).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "drain" && e.detail.contains(&format!("host {victim} "))), "the drain is audited: {audit:?}");
}
