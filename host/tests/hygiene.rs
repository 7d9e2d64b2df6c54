//! Task hygiene, our goroutine-leak test: 1,000 clients connect and disconnect (WebSocket and TCP, some
//! only saying hello, some joining), 200 rooms open and close, and afterwards the server is back where it
//! started: instance pool slots exactly, live tokio tasks and open file descriptors within 3 (what a
//! reading itself has in flight), resident memory within 16 MiB. Read from `/metrics`, as an operator
//! would.

mod common;

use common::server::*;
use std::time::{Duration, Instant};
use warden::net::client::{self, Endpoint, Received};
use warden::net::envelope::{ClientEnvelope, Format};
use warden::server::Server;

/// Resident memory may grow this much over a whole cycle: the allocator keeps freed pages and the
/// first cycle's high-water mark, which a leak of 1,000 sessions or 200 rooms (a room's instance
/// alone is over 1 MiB) would pass many times over.
const RSS_TOLERANCE: f64 = 16.0 * 1024.0 * 1024.0;

/// Tasks and file descriptors that may be in flight at any reading: the reading's own HTTP connection
/// (a task and a socket on each side) and a session's lingering close. A leak of one per client or room
/// is hundreds.
const TASK_TOLERANCE: f64 = 3.0;
const FD_TOLERANCE: f64 = 3.0;

struct Reading {
    tasks: f64,
    fds: f64,
    slots: f64,
    rss: f64,
    sessions: f64,
    rooms: f64,
}

async fn read(server: &Server) -> Reading {
    let text = server.admin_client().metrics().await.unwrap();
    let samples = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap().samples;
    let sum = |name: &str| -> f64 {
        samples
            .iter()
            .filter(|s| s.metric == name)
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    Reading {
        tasks: sum("warden_tokio_alive_tasks"),
        fds: sum("warden_process_open_fds"),
        slots: sum("warden_instance_pool_slots_in_use"),
        rss: sum("warden_process_resident_memory_bytes"),
        sessions: sum("warden_sessions_open"),
        rooms: sum("warden_rooms"),
    }
}

/// One cycle: 1,000 clients in batches; every fifth joins one of 200 rooms (two players each: 400
/// joins), the rest say hello (or nothing) and leave; every room closes after its grace.
async fn cycle(server: &Server, cycle: usize) {
    let endpoints = [ws(server, Format::MsgPack), ws(server, Format::Json), tcp(server)];
    for batch in 0..20 {
        let mut clients = Vec::new();
        for i in 0..50 {
            let n = batch * 50 + i;
            let endpoint: Endpoint = endpoints[n % 3].clone();
            clients.push(tokio::spawn(async move {
                let (mut tx, mut rx) = client::connect(&endpoint).await.unwrap();
                if n % 5 < 2 {
                    // 400 joins: 200 rooms of two.
                    let room = format!("h{cycle}-{}", n / 5);
                    client::handshake(&mut tx, &mut rx, None, "arena", &room).await.unwrap();
                } else if n % 5 < 4 {
                    tx.send(&ClientEnvelope::Hello { token: None }).await.unwrap();
                    rx.envelope(WAIT).await.unwrap();
                }
                tx.close().await;
                // Read to the end, so the server's close is seen through.
                while !matches!(rx.recv_within(WAIT).await, Ok(Received::Closed(_)) | Err(_)) {}
            }));
        }
        for c in clients {
            c.await.unwrap();
        }
    }
}

/// Waits until every session and room is gone.
async fn settled(server: &Server) -> Reading {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = read(server).await;
        if r.sessions == 0.0 && r.rooms == 0.0 && r.slots == 0.0 {
            // And one more reading, so the tasks that ended the last session have finished too.
            tokio::time::sleep(Duration::from_millis(200)).await;
            return read(server).await;
        }
        assert!(Instant::now() < deadline, "sessions {} rooms {} slots {} never went back to 0", r.sessions, r.rooms, r.slots);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_clients_and_two_hundred_rooms_leave_nothing_behind() {
    let server = start(&["rooms.empty_grace_ms=50", "net.max_connections_per_ip=2000"]).await;
    // The first cycle warms up what is made once (pools, caches, the allocator's arenas); the baseline
    // is taken after it, and a second, identical cycle must come back to it.
    cycle(&server, 0).await;
    let before = settled(&server).await;
    cycle(&server, 1).await;
    // Whatever is still finishing (a lingering close, the last reading's connection) ends by itself; a
    // leak never does.
    let deadline = Instant::now() + WAIT;
    let after = loop {
        let after = settled(&server).await;
        if (after.tasks <= before.tasks + TASK_TOLERANCE && after.fds <= before.fds + FD_TOLERANCE) || Instant::now() > deadline {
            break after;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "tasks {} -> {}, fds {} -> {}, pool slots {} -> {}, resident {:.1} -> {:.1} MiB",
        before.tasks,
        after.tasks,
        before.fds,
        after.fds,
        before.slots,
        after.slots,
        before.rss / 1048576.0,
        after.rss / 1048576.0
    );
    assert!(after.tasks <= before.tasks + TASK_TOLERANCE, "live tokio tasks: {} after, {} before", after.tasks, before.tasks);
    assert!(after.fds <= before.fds + FD_TOLERANCE, "open file descriptors: {} after, {} before", after.fds, before.fds);
    assert_eq!(after.slots, 0.0, "every instance pool slot is free");
    assert!(after.rss <= before.rss + RSS_TOLERANCE, "resident memory grew by {:.1} MiB", (after.rss - before.rss) / 1048576.0);
    server.shutdown().await;
}
