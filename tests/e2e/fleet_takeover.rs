//! Two real `warden serve` hosts in a fleet on one PostgreSQL (`WARDEN_TEST_DATABASE_URL`; skipped, and
//! listed as skipped, without it). Host a reaches PostgreSQL through a TCP proxy the test controls; host
//! b directly. Players play arena on a; the proxy holds every byte (a partition); a stops its rooms and
//! its lease expires; b starts, takes the rooms over (each resumes from its checkpoint and durable
//! journal) and the players carry on there. Then the partition heals: what a had handed to the store
//! before it was cut off reaches PostgreSQL late, and must be refused (fenced), since b owns those rooms
//! now. Finally b is SIGKILLed and restarted: every room resumes from the store with exactly the moves
//! its players got answers for, which fails if a's late writes had landed in b's rooms.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use warden::net::client::{self, ClientRx, ClientTx, Endpoint};
use warden::net::envelope::Format;
use warden::storage::postgres::PgStore;
use warden_tests::{Proxy, Serve, TestStore};

mod shared;
use shared::{Outcome, health, play_move, room_moves, wait_until};

const BOTS: usize = 6;
const PER_ROOM: usize = 2;
const SECRET: &str = "fleet-takeover-secret-0001";

#[derive(Default)]
struct Seen {
    answered: BTreeSet<u64>,
    kicked: bool,
}
type Shared = Arc<Mutex<Seen>>;

/// `warden serve` arguments for host `id` of a fleet on `url`: renew every 250 ms, a 6 s lease, stop 2 s
/// before it ends (generous: a loaded machine's delays must not lapse a lease nothing cut).
fn host_args(id: &str, url: &str) -> Vec<String> {
    let sets = [
        format!("storage.url={url:?}"),
        format!("auth.secret={SECRET:?}"),
        "fleet.enabled=true".into(),
        format!("fleet.host_id={id:?}"),
        "fleet.heartbeat_ms=250".into(),
        "fleet.lease_ms=6000".into(),
        "fleet.lease_margin_ms=2000".into(),
        // No checkpoint in the test's minute: a's late journal rows, had they landed, would not be
        // covered by one of b's, and would be replayed into b's rooms when b restarts.
        "rooms.checkpoint_every_ms=600000".into(),
    ];
    sets.into_iter().flat_map(|s| ["--set".to_string(), s]).collect()
}

fn start(dir: &std::path::Path, args: &[String], log: Option<&std::path::Path>) -> Serve {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match log {
        Some(log) => Serve::start_logging_to(dir, &["arena"], &args, log),
        None => Serve::start(dir, &["arena"], &args),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_cut_off_mid_play_loses_its_rooms_to_another_and_its_late_writes_are_fenced() {
    let Some(store) = TestStore::postgres("fleet_takeover").await else { return };
    let observer = PgStore::open(&store.url).await.unwrap();
    let (proxy, proxied) = Proxy::before_postgres(&store.url).await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let log_a = dir_a.path().join("a.log");
    let a = start(dir_a.path(), &host_args("a", &proxied), Some(&log_a));

    let (endpoint_tx, endpoint) = watch::channel(a.ws.clone());
    let stopping = Arc::new(AtomicBool::new(false));
    let seen: Vec<Shared> = (0..BOTS).map(|_| Shared::default()).collect();
    let bots: Vec<_> = (0..BOTS).map(|i| tokio::spawn(bot(i, endpoint.clone(), seen[i].clone(), stopping.clone()))).collect();
    let counts = || seen.iter().map(|s| s.lock().unwrap().answered.len()).collect::<Vec<_>>();
    let each_moved_since = |before: &[usize], n: usize| counts().iter().zip(before).all(|(now, then)| *now >= then + n);
    wait_until("play is under way on a", || each_moved_since(&[0; BOTS], 4)).await;

    // a is cut off from PostgreSQL: it stops its rooms, and the database expires its lease.
    proxy.blackhole();
    wait_until("every player is told its room moved", || seen.iter().all(|s| s.lock().unwrap().kicked)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while host_live(&observer, "a").await {
        assert!(Instant::now() < deadline, "the database expires a's lease within 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // b takes the rooms over; the players follow.
    let b = start(dir_b.path(), &host_args("b", &store.url), None);
    endpoint_tx.send_replace(b.ws.clone());
    let at_takeover = counts();
    wait_until("every player plays on b", || each_moved_since(&at_takeover, 3)).await;

    // The partition heals: what a handed to the store before the cut now reaches it, and is refused.
    proxy.heal();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log_a).unwrap_or_default().contains("fenced:") {
        assert!(
            Instant::now() < deadline,
            "a's late writes are fenced within 60 s; its log:\n{}",
            std::fs::read_to_string(&log_a).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after_heal = counts();
    wait_until("play goes on on b", || each_moved_since(&after_heal, 2)).await;
    // One writer per room: no tick of any room is stored twice with different calls (a's late rows
    // would be the same ticks as b's first ones after the takeover).
    for room in 0..BOTS / PER_ROOM {
        let mut copies = std::collections::HashMap::<i64, Vec<u8>>::new();
        for (tick, data) in observer.journal_copies("arena", &format!("r{room}")).await.unwrap() {
            if let Some(other) = copies.insert(tick, data.clone()) {
                assert_eq!(other, data, "r{room}: tick {tick} was stored by two hosts");
            }
        }
    }

    stopping.store(true, Ordering::Relaxed);
    let mut connections = Vec::new();
    for bot in bots {
        connections.push(tokio::time::timeout(Duration::from_secs(120), bot).await.expect("every player finishes").unwrap());
    }
    let rooms = BOTS / PER_ROOM;
    let live = room_moves(&b, dir_b.path(), rooms).await;
    // b crashes and comes back: its rooms resume from the store alone (a is gone by then, so that they
    // all come back on b rather than spread over the two).
    drop(a);
    let mut b = b;
    b.kill();
    drop(connections);
    let b = start(dir_b.path(), &host_args("b", &store.url), None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while health(&b).await.0 != 200 {
        assert!(Instant::now() < deadline, "b serves again within 60 s of its restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resumed = room_moves(&b, dir_b.path(), rooms).await;
    for (i, s) in seen.iter().enumerate() {
        let n = s.lock().unwrap().answered.len() as u64;
        let player = format!("bot-{i}");
        assert_eq!(live.get(&player).copied(), Some(n), "{player}: every answered move is in b's room, once");
        assert_eq!(resumed.get(&player).copied(), Some(n), "{player}: and in the store, once (nothing of a's landed after b took over)");
    }
    eprintln!("takeover: {:?} answered moves, none lost or applied twice", counts());
}

async fn host_live(observer: &PgStore, id: &str) -> bool {
    observer.hosts().await.unwrap().into_iter().any(|h| h.id == id && h.live)
}

/// One player: connects to the host the test points it at, joins its room (again, until a host serves
/// it), and moves one move at a time. Told its room moved, or cut off, it connects again and sends again
/// the move it was waiting for (arena answers a move it already applied again instead of applying it
/// twice). Once told to stop and answered, it returns its connection, still in the room.
async fn bot(index: usize, endpoint: watch::Receiver<String>, seen: Shared, stopping: Arc<AtomicBool>) -> (ClientTx, ClientRx) {
    let player = format!("bot-{index}");
    let room = format!("r{}", index / PER_ROOM);
    let (mut next, mut outstanding) = (1u64, None::<u64>);
    'connection: loop {
        let url = endpoint.borrow().clone();
        let token = warden::net::auth::mint(SECRET.as_bytes(), &player, warden::net::auth::unix_now() + 3600);
        let Ok((mut tx, mut rx)) = client::connect(&Endpoint::Ws(url, Format::MsgPack)).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if client::handshake(&mut tx, &mut rx, Some(token), "arena", &room).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        loop {
            let seq = match outstanding {
                Some(seq) => seq,
                None if stopping.load(Ordering::Relaxed) => return (tx, rx),
                None => {
                    next += 1;
                    next - 1
                }
            };
            outstanding = Some(seq);
            match play_move(&mut tx, &mut rx, &player, index, seq).await {
                Outcome::Answered => {
                    seen.lock().unwrap().answered.insert(seq);
                    outstanding = None;
                }
                // Then it connects again and sends the outstanding move again.
                Outcome::Kicked(_) => {
                    seen.lock().unwrap().kicked = true;
                    continue 'connection;
                }
                Outcome::Closed => continue 'connection,
            }
        }
    }
}
