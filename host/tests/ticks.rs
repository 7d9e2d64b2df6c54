//! The room's game clock, driven by the real room actor on tokio's paused clock (virtual time, so
//! the figures are exact): 200 ticks at 20 Hz are exactly 10 s of game time, ticks keep an absolute
//! schedule, and timers fire on the tick they are due.

mod common;

use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use ticker::{Report, SetTimer};
use tokio::time::{Duration, Instant};
use warden::config::{Dispatch, RoomConfig};
use warden::net::envelope::{self, Format, ServerEnvelope};
use warden::room::{GameEntry, Kill, OutQueue, OutReceiver, Outbound, PlayerConn, RoomHandle, RoomInput, Rooms, Switches};
use warden::runtime::MemorySaves;

async fn room() -> (Rooms, RoomHandle, Inbox) {
    room_with(RoomConfig::default()).await
}

async fn room_with(config: RoomConfig) -> (Rooms, RoomHandle, Inbox) {
    let plugin = common::plugin("ticker");
    let game = Arc::new(GameEntry::new(plugin, Vec::new(), Switches::default()));
    let rooms = Rooms::new(HashMap::from([("ticker".to_string(), game)]), config, Arc::new(MemorySaves::default()));
    let (out, rx) = OutQueue::new(10_000, 1 << 30);
    let conn =
        PlayerConn { id: "p".into(), format: Format::MsgPack, out, kill: Kill::default(), in_room: Arc::new(AtomicBool::new(false)) };
    let handle = rooms.join("ticker", "t1", conn).await.expect("joins");
    (rooms, handle, Inbox { rx, pending: VecDeque::new() })
}

/// The player's end: batches from the room, read one report at a time.
struct Inbox {
    rx: OutReceiver,
    pending: VecDeque<Bytes>,
}

impl Inbox {
    /// The next report (skipping the `joined` envelope), keeping the rest of its batch for later.
    async fn report(&mut self) -> Report {
        loop {
            while let Some(frame) = self.pending.pop_front() {
                if let ServerEnvelope::Msg { data } = envelope::decode_server(&frame, Format::MsgPack).unwrap() {
                    return rmp_serde::from_slice(&data).unwrap();
                }
            }
            // Virtual time: a report that never comes fails the test instead of ticking forever.
            let batch = tokio::time::timeout(Duration::from_secs(60), self.rx.recv()).await.expect("a report within 60 s of game time");
            let Some(Outbound::Frames(_, frames, _)) = batch else { panic!("the room closed") };
            self.pending.extend(frames);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn two_hundred_ticks_at_20_hz_are_exactly_ten_seconds() {
    let started = Instant::now();
    let (rooms, _handle, mut rx) = room().await;
    assert_eq!(rx.report().await, Report::Clock { tick: 100, now_ms: 5_000, dt_ms: 50 });
    assert_eq!(rx.report().await, Report::Clock { tick: 200, now_ms: 10_000, dt_ms: 50 });
    // The schedule is absolute: tick 200 runs 10 s (virtual) after the room started, not later.
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_secs(10) && elapsed < Duration::from_millis(10_050), "{elapsed:?}");
    rooms.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn timers_fire_on_the_tick_they_are_due_in_order() {
    let (rooms, handle, mut rx) = room().await;
    for (after_ms, tag) in [(120, "a"), (100, "b"), (100, "c"), (0, "now")] {
        let payload = rmp_serde::to_vec_named(&SetTimer { after_ms, tag: tag.into() }).unwrap();
        assert!(handle.send(RoomInput::Msg { player: "p".into(), payload }).await);
    }
    let mut set = HashMap::new();
    let mut fired = Vec::new();
    while fired.len() < 4 {
        match rx.report().await {
            Report::Set { tag, tick, now_ms } => {
                set.insert(tag, (tick, now_ms));
            }
            Report::Fired { tag, tick, now_ms } => fired.push((tag, tick, now_ms)),
            Report::Clock { .. } => {}
        }
    }
    let (set_tick, set_ms) = set["a"];
    assert!(set.values().all(|&(t, _)| t == set_tick), "all four were set on one tick: {set:?}");
    // 50 ms ticks: +0 fires on the next tick, +100 two ticks later (b before c, in the order set),
    // +120 on the first tick at or past it, three ticks later.
    let expect = [("now", 1), ("b", 2), ("c", 2), ("a", 3)];
    let got: Vec<(&str, u64)> = fired.iter().map(|(tag, tick, _)| (tag.as_str(), tick - set_tick)).collect();
    assert_eq!(got, expect);
    for (tag, _, now_ms) in &fired {
        let after = [("a", 120), ("b", 100), ("c", 100), ("now", 0)].iter().find(|(t, _)| t == tag).unwrap().1;
        // The first later tick at or past set + after (ticks are 50 ms apart).
        let expected = set_ms + (after as u64).div_ceil(50).max(1) * 50;
        assert_eq!(*now_ms, expected, "{tag}: set at {set_ms} ms for +{after} ms");
    }
    rooms.shutdown().await;
}

/// `rooms.dispatch = "arrival"`: each input is handed to the plugin, and answered, as it reaches the
/// room, with no tick waited for (on the paused clock: no time passes), on the game clock of the tick it
/// would have waited for in a `tick` room; a timer it sets fires as it would have there. A `tick` room
/// answers each of the same inputs at its next tick.
#[tokio::test(start_paused = true)]
async fn an_arrival_room_answers_each_input_at_once_on_the_clock_of_the_tick_it_belongs_to() {
    for dispatch in [Dispatch::Arrival, Dispatch::Tick] {
        let (rooms, handle, mut rx) = room_with(RoomConfig { dispatch, ..RoomConfig::default() }).await;
        assert!(matches!(rx.report().await, Report::Clock { tick: 100, .. }), "{dispatch:?}");
        // Tick 100 has just run; tick 101 is 50 ms away.
        let at = Instant::now();
        let mut fired = Vec::new();
        for i in 0..5u64 {
            let tag = format!("t{i}");
            let payload = rmp_serde::to_vec_named(&SetTimer { after_ms: 0, tag: tag.clone() }).unwrap();
            assert!(handle.send(RoomInput::Msg { player: "p".into(), payload }).await);
            let report = loop {
                match rx.report().await {
                    f @ Report::Fired { .. } => fired.push(f),
                    report => break report,
                }
            };
            let waited = Instant::now() - at;
            match dispatch {
                // One after the other, each answered at once, all in tick 101's section.
                Dispatch::Arrival => {
                    assert_eq!(report, Report::Set { tag, tick: 101, now_ms: 5_050 });
                    assert_eq!(waited, Duration::ZERO, "input {i} answered on arrival");
                }
                // Each waits for the next tick.
                Dispatch::Tick => {
                    assert_eq!(report, Report::Set { tag, tick: 101 + i, now_ms: 5_050 + 50 * i });
                    assert_eq!(waited, Duration::from_millis(50 * (i + 1)), "input {i} answered at its tick");
                }
            }
        }
        // Set with no delay, each fires at the tick after the one it was set on, as in a tick room.
        while fired.len() < 5 {
            fired.push(rx.report().await);
        }
        for (i, fired) in (0..5u64).zip(fired) {
            let at = if dispatch == Dispatch::Arrival { 102 } else { 102 + i };
            assert_eq!(fired, Report::Fired { tag: format!("t{i}"), tick: at, now_ms: at * 50 }, "{dispatch:?}");
        }
        rooms.shutdown().await;
    }
}

/// Saves in memory, with a back-pressure switch.
#[derive(Default)]
struct SlowSaves {
    behind: AtomicBool,
}

impl warden::runtime::SaveBackend for SlowSaves {
    fn load(&self, _game: &str, _player: &str) -> Option<Vec<u8>> {
        None
    }
    fn store(&self, _: &str, _: &str, _: Vec<u8>, _: warden::runtime::SavePriority) -> Option<warden::runtime::Durable> {
        None
    }
    fn backpressure(&self, game: &str) -> bool {
        game == "ticker" && self.behind.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[tokio::test(start_paused = true)]
async fn while_the_save_store_is_behind_inputs_wait_and_none_is_lost() {
    let saves = Arc::new(SlowSaves::default());
    let game = Arc::new(GameEntry::new(common::plugin("ticker"), Vec::new(), Switches::default()));
    let rooms = Rooms::new(HashMap::from([("ticker".to_string(), game)]), RoomConfig::default(), saves.clone());
    let (out, rx) = OutQueue::new(10_000, 1 << 30);
    let conn =
        PlayerConn { id: "p".into(), format: Format::MsgPack, out, kill: Kill::default(), in_room: Arc::new(AtomicBool::new(false)) };
    let handle = rooms.join("ticker", "t1", conn).await.unwrap();
    let mut rx = Inbox { rx, pending: VecDeque::new() };

    saves.behind.store(true, std::sync::atomic::Ordering::Relaxed);
    for i in 0..3 {
        let payload = rmp_serde::to_vec_named(&SetTimer { after_ms: 10_000, tag: format!("t{i}") }).unwrap();
        assert!(handle.send(RoomInput::Msg { player: "p".into(), payload }).await);
    }
    // Five seconds of game time later the room has ticked (its clock reports) but held the inputs.
    assert!(matches!(rx.report().await, Report::Clock { tick: 100, .. }), "the room kept ticking");
    assert!(rx.pending.is_empty(), "no input was delivered while the store was behind");

    saves.behind.store(false, std::sync::atomic::Ordering::Relaxed);
    let mut set = Vec::new();
    while set.len() < 3 {
        if let Report::Set { tag, tick, .. } = rx.report().await {
            assert!(tick > 100);
            set.push(tag);
        }
    }
    assert_eq!(set, ["t0", "t1", "t2"], "every held input, in arrival order");
    rooms.shutdown().await;
}
