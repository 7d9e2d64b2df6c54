//! The save queue between plugins and the store.
//!
//! - **Coalescing**: one pending entry per (game, player); a newer save replaces a queued older one.
//! - **Priorities**: a `critical` save wakes the writer at once and is written in a transaction of its
//!   own; `normal` saves are written together every `flush_interval` (default 1 s).
//! - **Batches**: one transaction per batch (up to `max_batch` saves).
//! - **Acknowledgement only once durable**: [`SaveQueue::submit`] returns a [`Ticket`];
//!   [`SaveQueue::durable`] resolves when that save (or a newer one of the same player) is committed.
//! - **Loads see the newest queued save first**, then what is known durable (written, or preloaded with
//!   [`SaveQueue::preload`] when a player joins).
//! - **Back-pressure, never loss**: past `high_water` pending saves or `high_water_bytes` pending
//!   bytes *of one game*, or while writes fail with saves of that game pending, the queue reports
//!   back-pressure for that game, whose rooms then hold their
//!   inputs: the game that saves too much feels it, the others do not. It keeps every save. Batches are
//!   bounded in bytes too, so that one game's flood does not sit in front of another game's critical
//!   save for long. Transient store errors (busy, locked, disk full, read-only) are retried and
//!   reported; an fsync failure is fatal (after a failed fsync Linux may drop the dirty pages, so a retry
//!   could falsely succeed): the queue stops writing and never acknowledges again.

use super::{SaveWrite, Store};
use crate::runtime::{SaveBackend, SavePriority};
use anyhow::{Result, anyhow, bail};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Queue settings.
#[derive(Clone, Debug)]
pub struct QueueConfig {
    /// How long a normal save may wait before it is written.
    pub flush_interval: Duration,
    /// Most saves in one transaction.
    pub max_batch: usize,
    /// Most bytes in one transaction (at least one save is always written).
    pub max_batch_bytes: usize,
    /// Pending saves of one game above which the queue reports back-pressure for that game.
    pub high_water: usize,
    /// Pending bytes of one game above which the queue reports back-pressure for that game.
    pub high_water_bytes: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            flush_interval: Duration::from_secs(1),
            max_batch: 2_000,
            max_batch_bytes: 2 << 20,
            high_water: 10_000,
            high_water_bytes: 64 << 20,
        }
    }
}

/// Counters, for tests, health and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    /// Saves accepted.
    pub accepted: u64,
    /// Saves replaced by a newer one before being written.
    pub coalesced: u64,
    /// Transactions committed.
    pub batches: u64,
    /// Saves written.
    pub written: u64,
    /// Transactions started for critical saves.
    pub critical_flushes: u64,
    /// Failed writes that were retried.
    pub retries: u64,
    /// Saves waiting now.
    pub pending: usize,
    /// Bytes waiting now.
    pub pending_bytes: usize,
    /// Whether any game is past a high-water mark.
    pub backpressure: bool,
    /// How long each committed transaction took (µs).
    #[serde(skip)]
    pub batch_us: crate::health::Histogram,
    /// From a critical save's submission to its commit (µs).
    #[serde(skip)]
    pub critical_us: crate::health::Histogram,
}

/// A handle on one accepted save, to wait for it to be durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket {
    key: (String, String),
    seq: u64,
}

struct Entry {
    data: Vec<u8>,
    critical: bool,
    seq: u64,
    /// For a critical save: when the oldest critical save it replaced was submitted.
    since: Option<std::time::Instant>,
}

impl State {
    /// A pending save of `game` of `bytes` bytes is gone (written, or replaced).
    fn forget(&mut self, game: &str, bytes: usize) {
        if let Some(load) = self.per_game.get_mut(game) {
            *load = (load.0.saturating_sub(1), load.1.saturating_sub(bytes));
            if load.0 == 0 {
                self.per_game.remove(game);
            }
        }
    }

    fn over(&self, config: &QueueConfig, load: (usize, usize)) -> bool {
        load.0 > config.high_water || load.1 > config.high_water_bytes
    }
}

#[derive(Default)]
struct State {
    pending: HashMap<(String, String), Entry>,
    /// Per game: pending saves and their bytes.
    per_game: HashMap<String, (usize, usize)>,
    known: HashMap<(String, String), Option<Vec<u8>>>,
    durable: HashMap<(String, String), u64>,
    next_seq: u64,
    stats: QueueStats,
    fatal: Option<String>,
    last_error: Option<String>,
}

struct Inner {
    state: Mutex<State>,
    wake: Notify,
    written: Notify,
    store: Store,
    config: QueueConfig,
    stop: CancellationToken,
}

/// The save queue. Cheap to clone.
#[derive(Clone)]
pub struct SaveQueue(Arc<Inner>);

impl SaveQueue {
    /// Starts the queue and its writer task on the current tokio runtime.
    pub fn start(store: Store, config: QueueConfig) -> (SaveQueue, tokio::task::JoinHandle<()>) {
        let queue = SaveQueue(Arc::new(Inner {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            written: Notify::new(),
            store,
            config,
            stop: CancellationToken::new(),
        }));
        let writer = tokio::spawn(queue.clone().writer());
        (queue, writer)
    }

    /// Accepts a save. Never blocks and never drops; see [`SaveQueue::stats`] for back-pressure.
    pub fn submit(&self, game: &str, player: &str, data: Vec<u8>, priority: SavePriority) -> Ticket {
        let key = (game.to_string(), player.to_string());
        let critical = priority == SavePriority::Critical;
        let mut s = self.0.state.lock().unwrap();
        s.next_seq += 1;
        let seq = s.next_seq;
        s.stats.accepted += 1;
        let bytes = data.len();
        let game_load = s.per_game.entry(key.0.clone()).or_default();
        *game_load = (game_load.0 + 1, game_load.1 + bytes);
        let since = critical.then(std::time::Instant::now);
        if let Some(old) = s.pending.insert(key.clone(), Entry { data, critical, seq, since }) {
            s.forget(&key.0, old.data.len());
            s.stats.coalesced += 1;
            if old.critical {
                // A critical save replaced by a normal one keeps its urgency, and its wait is counted
                // from the first.
                let entry = s.pending.get_mut(&key).expect("just inserted");
                entry.critical = true;
                entry.since = old.since;
            }
        }
        drop(s);
        if critical {
            self.0.wake.notify_one();
        }
        Ticket { key, seq }
    }

    /// The newest save of `player` in `game`: queued, else known durable. `None` for a player with no
    /// save, or one neither written nor preloaded since the queue started (preload on join).
    pub fn load(&self, game: &str, player: &str) -> Option<Vec<u8>> {
        let key = (game.to_string(), player.to_string());
        let s = self.0.state.lock().unwrap();
        if let Some(entry) = s.pending.get(&key) {
            return Some(entry.data.clone());
        }
        match s.known.get(&key) {
            Some(known) => known.clone(),
            None => {
                tracing::error!(game, player, "load-save for a player that was not preloaded; answering none");
                None
            }
        }
    }

    /// Reads a player's durable save into memory so that `load` can answer without I/O.
    pub async fn preload(&self, game: &str, player: &str) -> Result<()> {
        let key = (game.to_string(), player.to_string());
        if self.0.state.lock().unwrap().known.contains_key(&key) {
            return Ok(());
        }
        let stored = self.0.store.load_save(game, player).await?;
        self.0.state.lock().unwrap().known.entry(key).or_insert(stored.map(|s| s.data));
        Ok(())
    }

    /// Resolves once the save of `ticket` (or a newer save of the same player) is committed. Fails if the
    /// queue hit a fatal store error first.
    pub async fn durable(&self, ticket: &Ticket) -> Result<()> {
        loop {
            let written = self.0.written.notified();
            {
                let s = self.0.state.lock().unwrap();
                if s.durable.get(&ticket.key).is_some_and(|&seq| seq >= ticket.seq) {
                    return Ok(());
                }
                if let Some(fatal) = &s.fatal {
                    bail!("the save was not written: the store failed fatally ({fatal})");
                }
            }
            written.await;
        }
    }

    /// Writes everything pending now (shutdown, tests). Fails on a store error.
    pub async fn flush(&self) -> Result<()> {
        while self.write_batch(false).await? > 0 {}
        Ok(())
    }

    /// The counters.
    pub fn stats(&self) -> QueueStats {
        let s = self.0.state.lock().unwrap();
        QueueStats {
            pending: s.pending.len(),
            pending_bytes: s.per_game.values().map(|l| l.1).sum(),
            backpressure: s.per_game.values().any(|&l| s.over(&self.0.config, l)),
            ..s.stats
        }
    }

    /// The last store error, if writes are failing, and whether it was fatal.
    pub fn health(&self) -> Option<(String, bool)> {
        let s = self.0.state.lock().unwrap();
        s.fatal.clone().map(|f| (f, true)).or_else(|| s.last_error.clone().map(|e| (e, false)))
    }

    /// Flushes what is pending and stops the writer.
    pub async fn close(&self) -> Result<()> {
        let result = self.flush().await;
        self.0.stop.cancel();
        result
    }

    async fn writer(self) {
        let period = self.0.config.flush_interval;
        // The first flush is one interval away (a plain interval's first tick completes at once).
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backoff = Duration::from_millis(10);
        loop {
            let only_critical = tokio::select! {
                _ = self.0.stop.cancelled() => return,
                _ = self.0.wake.notified() => true,
                _ = ticks.tick() => false,
            };
            loop {
                match self.write_batch(only_critical).await {
                    Ok(0) => break,
                    Ok(_) => backoff = Duration::from_millis(10),
                    Err(e) if self.0.state.lock().unwrap().fatal.is_some() => {
                        tracing::error!("the save queue stopped writing: {e:#}");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!("failed to write saves, retrying in {backoff:?}: {e:#}");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
    }

    /// Writes one batch (critical saves only, or everything); returns how many saves it wrote.
    async fn write_batch(&self, only_critical: bool) -> Result<usize> {
        // Each save's data is copied once, out of the pending map; the entries stay there (and keep
        // answering loads) until the write is committed.
        let (seqs, writes): (Vec<(u64, Option<std::time::Instant>)>, Vec<SaveWrite>) = {
            let s = self.0.state.lock().unwrap();
            if let Some(fatal) = &s.fatal {
                bail!("the store failed fatally: {fatal}");
            }
            let mut entries: Vec<_> = s.pending.iter().filter(|(_, e)| !only_critical || e.critical).collect();
            entries.sort_by_key(|(_, e)| (!e.critical, e.seq));
            let mut bytes = 0usize;
            entries
                .into_iter()
                .take(self.0.config.max_batch)
                .take_while(|(_, e)| {
                    let first = bytes == 0;
                    bytes += e.data.len().max(1);
                    first || bytes <= self.0.config.max_batch_bytes
                })
                .map(|(k, e)| ((e.seq, e.since), SaveWrite { game: k.0.clone(), player: k.1.clone(), data: e.data.clone() }))
                .unzip()
        };
        if writes.is_empty() {
            return Ok(0);
        }
        let started = std::time::Instant::now();
        let result = self.0.store.write_saves(&writes).await;
        let took = started.elapsed().as_micros() as u64;
        let written = writes.len();
        let mut s = self.0.state.lock().unwrap();
        match result {
            Ok(_) => {
                s.stats.batches += 1;
                s.stats.batch_us.record(took);
                s.stats.written += written as u64;
                if only_critical {
                    s.stats.critical_flushes += 1;
                }
                s.last_error = None;
                for ((seq, since), write) in seqs.into_iter().zip(writes) {
                    let key = (write.game, write.player);
                    if s.pending.get(&key).is_some_and(|e| e.seq == seq) {
                        // (A save replaced meanwhile keeps its wait for the write that takes it.)
                        if let Some(since) = since {
                            s.stats.critical_us.record(since.elapsed().as_micros() as u64);
                        }
                        s.pending.remove(&key);
                        s.forget(&key.0, write.data.len());
                    }
                    let newest = s.durable.get(&key).copied().unwrap_or(0).max(seq);
                    s.durable.insert(key.clone(), newest);
                    if newest == seq {
                        s.known.insert(key, Some(write.data));
                    }
                }
                drop(s);
                self.0.written.notify_waiters();
                Ok(written)
            }
            Err(e) => {
                let text = format!("{e:#}");
                s.stats.retries += 1;
                s.last_error = Some(text.clone());
                if is_fatal(&e) {
                    s.fatal = Some(text.clone());
                    drop(s);
                    self.0.written.notify_waiters();
                }
                Err(anyhow!(text))
            }
        }
    }
}

/// An fsync failure (SQLite's SQLITE_IOERR_FSYNC and _DIR_FSYNC) cannot be retried safely.
fn is_fatal(error: &anyhow::Error) -> bool {
    const SQLITE_IOERR_FSYNC: &str = "1034";
    const SQLITE_IOERR_DIR_FSYNC: &str = "1290";
    error.chain().filter_map(|e| e.downcast_ref::<sqlx::Error>()).any(|e| match e {
        sqlx::Error::Database(db) => db.code().is_some_and(|c| c == SQLITE_IOERR_FSYNC || c == SQLITE_IOERR_DIR_FSYNC),
        _ => false,
    })
}

impl SaveBackend for SaveQueue {
    fn load(&self, game: &str, player: &str) -> Option<Vec<u8>> {
        SaveQueue::load(self, game, player)
    }

    fn store(&self, game: &str, player: &str, data: Vec<u8>, priority: SavePriority) -> Option<crate::runtime::Durable> {
        let ticket = self.submit(game, player, data, priority);
        let queue = self.clone();
        Some(Box::pin(async move { queue.durable(&ticket).await }))
    }

    fn is_loaded(&self, game: &str, player: &str) -> bool {
        let key = (game.to_string(), player.to_string());
        let s = self.0.state.lock().unwrap();
        s.pending.contains_key(&key) || s.known.contains_key(&key)
    }

    fn backpressure(&self, game: &str) -> bool {
        let s = self.0.state.lock().unwrap();
        // Past a high-water mark, or holding saves of the game while the store fails (a lost database
        // connection): the game's rooms hold their inputs until its saves are written again.
        s.per_game.get(game).is_some_and(|&load| s.over(&self.0.config, load) || s.last_error.is_some())
    }

    fn preload<'a>(&'a self, game: &'a str, player: &'a str) -> crate::runtime::Preload<'a> {
        Box::pin(SaveQueue::preload(self, game, player))
    }
}

#[cfg(test)]
mod tests;
