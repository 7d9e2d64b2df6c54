//! A room's truth: its last checkpoint ([`Base`]) and the [`Journal`] of every plugin call since, and
//! [`replay`], which rebuilds an instance from the two.
//!
//! The journal records calls, not effects: the tick each group of calls ran in, then every `on-join`,
//! `on-leave`, `on-message`, `on-timer` and `on-tick` in the order the room made them. Time and random
//! numbers come from the host (the clock is set from the journal, the random stream restarts at the
//! checkpoint's draw count), and so do saves: each save a call read follows the call (`Loaded`), and a
//! replay hands the call what it read then, not what the store holds by the time of the replay (a bank
//! that reads a balance on join and adds each deposit would otherwise count every deposit since the join
//! twice). So replaying the journal into the same version gives the same state, byte for byte; replaying
//! it into another version gives what that version would have made of the same inputs. A call that
//! trapped is taken out again, so a replay never meets it.
//!
//! Entries are packed into one byte buffer (a tag, varints, payload bytes; players by index into a small
//! table), so a room at 20 Hz with four players keeps a few bytes per tick plus its messages.

use crate::runtime::{CallError, InstanceEnv, Plugin, PluginInstance};
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

/// A timer the plugin set, due at game time `due_ms`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Timer {
    /// Game time it is due at.
    pub due_ms: u64,
    /// Order among timers due at the same time.
    pub seq: u64,
    /// The plugin's tag.
    pub tag: String,
}

/// A checkpoint: the state a version made at a tick, with the host-side part of the room that replay
/// needs (random draws and pending timers).
#[derive(Clone)]
pub struct Base {
    /// Increasing per room; names the checkpoint in crash reports.
    pub id: u64,
    /// The version that made `state`.
    pub version: Arc<str>,
    /// The tick the snapshot was taken after.
    pub tick: u64,
    /// The room's random seed and hash key (a resumed room keeps both).
    pub seed: u64,
    /// See [`RoomRng`](crate::runtime::RoomRng).
    pub hash_key: u64,
    /// Random numbers drawn by then.
    pub draws: u64,
    /// Timers pending then.
    pub timers: Vec<Timer>,
    /// The timer sequence counter then.
    pub timer_seq: u64,
    /// The feature switches that were on then (a replay starts from them).
    pub features: Arc<BTreeSet<String>>,
    /// The players in the room then.
    pub players: Vec<Arc<str>>,
    /// `snapshot()` bytes.
    pub state: Vec<u8>,
}

impl Base {
    /// The version that made the state.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Encodes the checkpoint for the store (the plugin is named by its version).
    pub fn encode(&self) -> Vec<u8> {
        let stored = Stored {
            tick: self.tick,
            seed: Some(self.seed),
            hash_key: Some(self.hash_key),
            draws: self.draws,
            timers: self.timers.clone(),
            timer_seq: self.timer_seq,
            features: Some(self.features.iter().cloned().collect()),
            players: Some(self.players.iter().map(|p| p.to_string()).collect()),
            state: self.state.clone(),
        };
        rmp_serde::to_vec_named(&stored).expect("a checkpoint encodes")
    }

    /// The checkpoint the store holds (made by `version`), with `id`.
    /// Its seed and hash key are those stored, or `seeds` for a checkpoint written before they were.
    pub fn decode(bytes: &[u8], version: &str, id: u64, seeds: (u64, u64)) -> anyhow::Result<Base> {
        let stored = Stored::decode(bytes)?;
        Ok(Base {
            id,
            version: version.into(),
            tick: stored.tick,
            seed: stored.seed.unwrap_or(seeds.0),
            hash_key: stored.hash_key.unwrap_or(seeds.1),
            draws: stored.draws,
            timers: stored.timers,
            timer_seq: stored.timer_seq,
            features: Arc::new(stored.features.unwrap_or_default().into_iter().collect()),
            players: stored.players.unwrap_or_default().into_iter().map(Arc::from).collect(),
            state: stored.state,
        })
    }
}

/// A checkpoint as the store keeps it.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Stored {
    /// Tick.
    pub tick: u64,
    /// The room's seed (absent in checkpoints written before it was stored).
    #[serde(default)]
    pub seed: Option<u64>,
    /// The room's hash key (likewise).
    #[serde(default)]
    pub hash_key: Option<u64>,
    /// Random draws.
    pub draws: u64,
    /// Pending timers.
    pub timers: Vec<Timer>,
    /// Timer sequence counter.
    pub timer_seq: u64,
    /// The feature switches on (absent in checkpoints written before they were stored).
    #[serde(default)]
    pub features: Option<Vec<String>>,
    /// The players in the room (likewise).
    #[serde(default)]
    pub players: Option<Vec<String>>,
    /// Snapshot bytes.
    #[serde(with = "serde_bytes")]
    pub state: Vec<u8>,
}

impl Stored {
    /// Decodes [`Base::encode`]'s bytes.
    pub fn decode(bytes: &[u8]) -> anyhow::Result<Stored> {
        Ok(rmp_serde::from_slice(bytes)?)
    }
}

/// One journaled call.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Entry {
    /// The calls after this ran at `tick`.
    Begin(u64),
    /// `on-join(player)`.
    Join(Arc<str>),
    /// `on-leave(player)`.
    Leave(Arc<str>),
    /// `on-message(player, payload)`.
    Msg(Arc<str>, Vec<u8>),
    /// `on-timer(tag)`.
    Timer(String),
    /// `on-tick(tick, dt)` for the current tick.
    Tick(u32),
    /// The feature switches on from here (the operator changed them at this tick's start).
    Features(Arc<BTreeSet<String>>),
    /// A save the call before it read with `load-save` (`None`: the player had none), in the order read.
    Loaded(Arc<str>, Option<Vec<u8>>),
}

const BEGIN: u8 = 1;
const JOIN: u8 = 2;
const LEAVE: u8 = 3;
const MSG: u8 = 4;
const TIMER: u8 = 5;
const TICK: u8 = 6;
const FEATURES: u8 = 7;
const LOADED: u8 = 8;

/// The calls since the last checkpoint, packed.
#[derive(Clone, Default)]
pub struct Journal {
    bytes: Vec<u8>,
    players: Vec<Arc<str>>,
    entries: usize,
}

impl Journal {
    /// Bytes held (entries and the player table).
    pub fn memory(&self) -> usize {
        self.bytes.capacity()
            + self.players.capacity() * std::mem::size_of::<Arc<str>>()
            + self.players.iter().map(|p| p.len()).sum::<usize>()
    }

    /// Bytes of entries.
    pub fn len_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Forgets everything (after a checkpoint).
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.players.clear();
        self.entries = 0;
    }

    /// Where the next entry starts (to take it back with [`Journal::truncate`]).
    pub fn mark(&self) -> (usize, usize) {
        (self.bytes.len(), self.entries)
    }

    /// Takes back every entry since `mark` (a call that trapped).
    pub fn truncate(&mut self, mark: (usize, usize)) {
        self.bytes.truncate(mark.0);
        self.entries = mark.1;
    }

    fn player(&mut self, p: &Arc<str>) -> u64 {
        if let Some(i) = self.players.iter().rposition(|q| q == p) {
            return i as u64;
        }
        self.players.push(p.clone());
        (self.players.len() - 1) as u64
    }

    fn varint(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.bytes.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.bytes.push(n as u8);
    }

    /// Appends an entry.
    pub fn push(&mut self, entry: &Entry) {
        match entry {
            Entry::Begin(tick) => self.begin(*tick),
            Entry::Join(p) => self.join(p),
            Entry::Leave(p) => self.leave(p),
            Entry::Msg(p, payload) => self.msg(p, payload),
            Entry::Timer(tag) => self.timer(tag),
            Entry::Tick(dt) => self.on_tick(*dt),
            Entry::Features(on) => self.features(on),
            Entry::Loaded(p, save) => self.loaded(p, save.as_deref()),
        }
    }

    /// The calls after this run at `tick`.
    pub fn begin(&mut self, tick: u64) {
        self.entries += 1;
        self.bytes.push(BEGIN);
        self.varint(tick);
    }

    /// `on-join(player)`.
    pub fn join(&mut self, p: &Arc<str>) {
        self.entries += 1;
        let i = self.player(p);
        self.bytes.push(JOIN);
        self.varint(i);
    }

    /// `on-leave(player)`.
    pub fn leave(&mut self, p: &Arc<str>) {
        self.entries += 1;
        let i = self.player(p);
        self.bytes.push(LEAVE);
        self.varint(i);
    }

    /// `on-message(player, payload)`.
    pub fn msg(&mut self, p: &Arc<str>, payload: &[u8]) {
        self.entries += 1;
        let i = self.player(p);
        self.bytes.push(MSG);
        self.varint(i);
        self.varint(payload.len() as u64);
        self.bytes.extend_from_slice(payload);
    }

    /// `on-timer(tag)`.
    pub fn timer(&mut self, tag: &str) {
        self.entries += 1;
        self.bytes.push(TIMER);
        self.varint(tag.len() as u64);
        self.bytes.extend_from_slice(tag.as_bytes());
    }

    /// `on-tick(tick, dt)` of the current tick.
    pub fn on_tick(&mut self, dt: u32) {
        self.entries += 1;
        self.bytes.push(TICK);
        self.varint(u64::from(dt));
    }

    /// The feature switches on from here.
    pub fn features(&mut self, on: &BTreeSet<String>) {
        self.entries += 1;
        self.bytes.push(FEATURES);
        self.varint(on.len() as u64);
        for name in on {
            self.varint(name.len() as u64);
            self.bytes.extend_from_slice(name.as_bytes());
        }
    }

    /// A save the last call read (after that call's entry).
    pub fn loaded(&mut self, p: &Arc<str>, save: Option<&[u8]>) {
        self.entries += 1;
        let i = self.player(p);
        self.bytes.push(LOADED);
        self.varint(i);
        match save {
            None => self.bytes.push(0),
            Some(data) => {
                self.bytes.push(1);
                self.varint(data.len() as u64);
                self.bytes.extend_from_slice(data);
            }
        }
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> Entries<'_> {
        Entries { journal: self, at: 0 }
    }

    /// Where a [`Chunk`] of what follows starts.
    pub fn chunk_mark(&self) -> ChunkMark {
        ChunkMark { bytes: self.bytes.len(), players: self.players.len(), entries: self.entries }
    }

    /// The entries since `mark`, encoded for the store with the players they introduced; `None` if there
    /// are none (or the journal was cleared since).
    pub fn chunk_since(&self, mark: ChunkMark) -> Option<Vec<u8>> {
        if mark.bytes >= self.bytes.len() || mark.players > self.players.len() {
            return None;
        }
        let added = &self.players[mark.players..];
        let size = 20 + added.iter().map(|p| p.len() + 10).sum::<usize>() + (self.bytes.len() - mark.bytes);
        let mut out = Journal { bytes: Vec::with_capacity(size), ..Journal::default() };
        out.varint((self.players.len() - mark.players) as u64);
        for p in added {
            out.varint(p.len() as u64);
            out.bytes.extend_from_slice(p.as_bytes());
        }
        out.varint((self.entries - mark.entries) as u64);
        out.bytes.extend_from_slice(&self.bytes[mark.bytes..]);
        Some(out.bytes)
    }

    /// Appends a chunk written by [`Journal::chunk_since`] of a journal that held what this one holds.
    pub fn append_chunk(&mut self, chunk: &[u8]) -> Result<(), ChunkError> {
        let mut r = Reader { bytes: chunk, at: 0 };
        let players = r.varint()?;
        let mut added = Vec::new();
        for _ in 0..players {
            let name = std::str::from_utf8(r.bytes()?).map_err(|_| ChunkError("a player id is not UTF-8"))?;
            added.push(Arc::<str>::from(name));
        }
        let entries = r.varint()? as usize;
        let body = &chunk[r.at..];
        // Walk the entries once so that a damaged row is refused here, not met by a replay.
        let table = self.players.len() + added.len();
        let mut check = Reader { bytes: body, at: 0 };
        for _ in 0..entries {
            let tag = check.byte()?;
            match tag {
                BEGIN | TICK => {
                    check.varint()?;
                }
                JOIN | LEAVE | MSG | LOADED => {
                    if check.varint()? as usize >= table {
                        return Err(ChunkError("an entry names a player the journal does not hold"));
                    }
                    match tag {
                        MSG => {
                            check.bytes()?;
                        }
                        LOADED => match check.byte()? {
                            0 => {}
                            1 => {
                                check.bytes()?;
                            }
                            _ => return Err(ChunkError("a save read is neither none nor some")),
                        },
                        _ => {}
                    }
                }
                TIMER => {
                    check.bytes()?;
                }
                FEATURES => {
                    for _ in 0..check.varint()? {
                        check.bytes()?;
                    }
                }
                _ => return Err(ChunkError("an entry has an unknown tag")),
            }
        }
        if check.at != body.len() {
            return Err(ChunkError("bytes follow the last entry"));
        }
        self.players.extend(added);
        self.bytes.extend_from_slice(body);
        self.entries += entries;
        Ok(())
    }

    /// The tick of the last `Begin` entry, if any.
    pub fn last_tick(&self) -> Option<u64> {
        self.entries().filter_map(|e| if let Entry::Begin(t) = e { Some(t) } else { None }).last()
    }
}

/// Where a chunk starts: see [`Journal::chunk_mark`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChunkMark {
    bytes: usize,
    players: usize,
    entries: usize,
}

/// A stored journal chunk that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("a stored journal row is damaged: {0}")]
pub struct ChunkError(&'static str);

/// Reads varints and length-prefixed bytes, refusing to run off the end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, ChunkError> {
        let b = *self.bytes.get(self.at).ok_or(ChunkError("it ends early"))?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, ChunkError> {
        let (mut n, mut shift) = (0u64, 0);
        loop {
            let b = self.byte()?;
            if shift > 63 {
                return Err(ChunkError("a number is too long"));
            }
            n |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(n);
            }
            shift += 7;
        }
    }

    fn bytes(&mut self) -> Result<&'a [u8], ChunkError> {
        let len = self.varint()? as usize;
        let end = self.at.checked_add(len).filter(|&e| e <= self.bytes.len()).ok_or(ChunkError("it ends early"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
}

/// Iterator over a [`Journal`].
pub struct Entries<'a> {
    journal: &'a Journal,
    at: usize,
}

impl Entries<'_> {
    fn varint(&mut self) -> u64 {
        let (mut n, mut shift) = (0u64, 0);
        loop {
            let b = self.journal.bytes[self.at];
            self.at += 1;
            n |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return n;
            }
            shift += 7;
        }
    }

    fn bytes(&mut self) -> &[u8] {
        let len = self.varint() as usize;
        let start = self.at;
        self.at += len;
        &self.journal.bytes[start..self.at]
    }
}

impl Iterator for Entries<'_> {
    type Item = Entry;
    fn next(&mut self) -> Option<Entry> {
        let tag = *self.journal.bytes.get(self.at)?;
        self.at += 1;
        Some(match tag {
            BEGIN => Entry::Begin(self.varint()),
            JOIN => Entry::Join(self.journal.players[self.varint() as usize].clone()),
            LEAVE => Entry::Leave(self.journal.players[self.varint() as usize].clone()),
            MSG => {
                let p = self.journal.players[self.varint() as usize].clone();
                Entry::Msg(p, self.bytes().to_vec())
            }
            TIMER => Entry::Timer(String::from_utf8_lossy(self.bytes()).into_owned()),
            TICK => Entry::Tick(self.varint() as u32),
            FEATURES => {
                let n = self.varint();
                Entry::Features(Arc::new((0..n).map(|_| String::from_utf8_lossy(self.bytes()).into_owned()).collect()))
            }
            LOADED => {
                let p = self.journal.players[self.varint() as usize].clone();
                let some = self.journal.bytes[self.at] == 1;
                self.at += 1;
                Entry::Loaded(p, some.then(|| self.bytes().to_vec()))
            }
            other => unreachable!("journal tag {other} is never written"),
        })
    }
}

/// An instance rebuilt by [`replay`], with the room's timers as that version left them.
pub struct Replayed {
    /// The instance, at the journal's end.
    pub instance: PluginInstance,
    /// Pending timers.
    pub timers: Vec<Timer>,
    /// Timer sequence counter.
    pub timer_seq: u64,
    /// Journal entries that trapped in this version and were skipped.
    pub skipped: Vec<usize>,
    /// Calls replayed.
    pub calls: usize,
    /// Time spent instantiating and restoring the checkpoint (the rest was the replay).
    pub restore: std::time::Duration,
}

/// Why a replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// No instance could be made.
    #[error("cannot instantiate version {0}: {1}")]
    Instantiate(String, String),
    /// The version cannot read the checkpoint.
    #[error("version {version} cannot restore the checkpoint made by {from}: {error}")]
    Restore {
        /// Target version.
        version: String,
        /// The checkpoint's version.
        from: String,
        /// What restore said.
        error: CallError,
    },
    /// Too many calls trapped.
    #[error("{0} calls trapped during the replay; giving up")]
    TooManyTraps(usize),
}

/// Most calls a replay skips (each skip restarts the replay) before it gives up.
const MAX_SKIPS: usize = 8;

/// Rebuilds `plugin`'s instance from `base` and `journal` in `env` (whose clock and random stream it
/// moves along), with every send, kick and metric dropped. A call that traps is skipped and the replay
/// starts over without it (at most [`MAX_SKIPS`] times); `skip` lists entries known to trap already.
pub fn replay(
    plugin: &Plugin,
    env: &InstanceEnv,
    hz: u32,
    base: &Base,
    journal: &Journal,
    skip: &[usize],
) -> Result<Replayed, ReplayError> {
    let mut skipped: Vec<usize> = skip.to_vec();
    loop {
        match replay_once(plugin, env, hz, base, journal, &skipped)? {
            Ok(done) => return Ok(Replayed { skipped, ..done }),
            Err(at) => {
                skipped.push(at);
                if skipped.len() > MAX_SKIPS {
                    return Err(ReplayError::TooManyTraps(skipped.len()));
                }
            }
        }
    }
}

/// One pass; `Ok(Err(i))` when entry `i` trapped.
fn replay_once(
    plugin: &Plugin,
    env: &InstanceEnv,
    hz: u32,
    base: &Base,
    journal: &Journal,
    skip: &[usize],
) -> Result<Result<Replayed, usize>, ReplayError> {
    let version = plugin.manifest().version.clone();
    let ms = |tick: u64| tick * 1000 / u64::from(hz);
    env.clock.set(base.tick, ms(base.tick));
    env.rng.set_draws(base.draws);
    env.features.set_all(base.features.clone());
    let started = std::time::Instant::now();
    let mut instance = plugin.instantiate(env.clone()).map_err(|e| ReplayError::Instantiate(version.clone(), format!("{e:#}")))?;
    instance.restore(&base.state, base.version()).map_err(|error| ReplayError::Restore {
        version: version.clone(),
        from: base.version().to_string(),
        error,
    })?;
    let restore = started.elapsed();
    let mut timers = base.timers.clone();
    let mut timer_seq = base.timer_seq;
    let mut tick = base.tick;
    let mut calls = 0;
    let mut entries = journal.entries().enumerate().peekable();
    while let Some((i, entry)) = entries.next() {
        match &entry {
            Entry::Begin(t) => {
                tick = *t;
                env.clock.set(tick, ms(tick));
                continue;
            }
            Entry::Features(on) => {
                env.features.set_all(on.clone());
                continue;
            }
            // Read by a call that is skipped below: taken with it.
            Entry::Loaded(..) => continue,
            _ => {}
        }
        // The saves this call read when it ran, handed to it again in the same order.
        let mut reads = VecDeque::new();
        while let Some((_, Entry::Loaded(p, save))) = entries.next_if(|(_, e)| matches!(e, Entry::Loaded(..))) {
            reads.push_back((p.to_string(), save));
        }
        if skip.contains(&i) {
            continue;
        }
        calls += 1;
        instance.host_mut().replay_save_reads(reads);
        // The timer limit sees what the live room saw: the timers pending before this call.
        let pending = timers.len() - usize::from(matches!(&entry, Entry::Timer(tag) if timers.iter().any(|t| &t.tag == tag)));
        env.timers_pending.store(pending, std::sync::atomic::Ordering::Relaxed);
        let result = match &entry {
            Entry::Begin(_) | Entry::Features(_) | Entry::Loaded(..) => unreachable!("handled above"),
            Entry::Join(p) => instance.on_join(p),
            Entry::Leave(p) => instance.on_leave(p),
            Entry::Msg(p, payload) => instance.on_message(p, payload),
            Entry::Timer(tag) => {
                if let Some(at) = timers.iter().position(|t| &t.tag == tag) {
                    timers.remove(at);
                }
                instance.on_timer(tag)
            }
            Entry::Tick(dt) => instance.on_tick(tick, *dt),
        };
        let host = instance.host_mut();
        host.clear_outbox();
        host.take_kicks();
        host.take_metrics();
        drop(host.take_critical_saves());
        for t in host.take_timers() {
            timer_seq += 1;
            timers.push(Timer { due_ms: t.due_ms, seq: timer_seq, tag: t.tag });
        }
        if let Err(e) = result
            && e.is_fatal()
        {
            tracing::debug!(entry = i, "skipped in replay: {e}");
            return Ok(Err(i));
        }
    }
    // From here the instance may serve live: its reads are recorded again.
    instance.host_mut().record_save_reads();
    Ok(Ok(Replayed { instance, timers, timer_seq, skipped: Vec::new(), calls, restore }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_back_as_written_and_a_mark_takes_them_back() {
        let (a, b): (Arc<str>, Arc<str>) = ("alice".into(), "bob".into());
        let written = vec![
            Entry::Begin(1),
            Entry::Join(a.clone()),
            Entry::Join(b.clone()),
            Entry::Msg(a.clone(), vec![1, 2, 3]),
            Entry::Msg(b.clone(), vec![0; 300]),
            Entry::Timer("spawn".into()),
            Entry::Tick(50),
            Entry::Begin(300_000),
            Entry::Features(Arc::new(["chat".to_string(), "double-xp".to_string()].into())),
            Entry::Features(Arc::default()),
            Entry::Loaded(b.clone(), Some(vec![0x2a])),
            Entry::Loaded(a.clone(), None),
            Entry::Leave(a.clone()),
        ];
        let mut j = Journal::default();
        for e in &written {
            j.push(e);
        }
        assert_eq!(j.entries().collect::<Vec<_>>(), written);
        assert_eq!(j.len(), written.len());
        let mark = j.mark();
        j.push(&Entry::Msg(b.clone(), vec![9]));
        j.truncate(mark);
        assert_eq!(j.entries().collect::<Vec<_>>(), written);
        j.clear();
        assert!(j.is_empty() && j.entries().next().is_none());
    }

    #[test]
    fn chunks_rebuild_the_journal_they_came_from_and_damaged_ones_are_refused() {
        let (a, b): (Arc<str>, Arc<str>) = ("alice".into(), "bob".into());
        let mut live = Journal::default();
        let mut chunks = Vec::new();
        let ticks: Vec<Vec<Entry>> = vec![
            vec![Entry::Begin(1), Entry::Join(a.clone()), Entry::Tick(50)],
            vec![
                Entry::Begin(2),
                Entry::Msg(a.clone(), vec![1, 2]),
                Entry::Join(b.clone()),
                Entry::Loaded(b.clone(), None),
                Entry::Msg(b.clone(), vec![3]),
                Entry::Loaded(a.clone(), Some(vec![7; 200])),
                Entry::Tick(50),
            ],
            vec![
                Entry::Begin(3),
                Entry::Features(Arc::new(["chat".to_string()].into())),
                Entry::Timer("t".into()),
                Entry::Leave(a.clone()),
            ],
        ];
        for tick in &ticks {
            let mark = live.chunk_mark();
            for e in tick {
                live.push(e);
            }
            chunks.push(live.chunk_since(mark).unwrap());
            assert_eq!(live.chunk_since(live.chunk_mark()), None, "nothing since a fresh mark");
        }
        let mut rebuilt = Journal::default();
        for chunk in &chunks {
            rebuilt.append_chunk(chunk).unwrap();
        }
        assert_eq!(rebuilt.entries().collect::<Vec<_>>(), live.entries().collect::<Vec<_>>());
        assert_eq!((rebuilt.len(), rebuilt.last_tick()), (live.len(), Some(3)));
        // A chunk that names a player introduced by an earlier chunk needs that chunk first.
        assert!(Journal::default().append_chunk(&chunks[2]).is_err());
        for cut in 1..chunks[1].len() {
            let mut j = Journal::default();
            j.append_chunk(&chunks[0]).unwrap();
            assert!(j.append_chunk(&chunks[1][..cut]).is_err(), "a chunk cut at {cut} is refused");
            assert_eq!(j.len(), 3, "a refused chunk adds nothing");
        }
        // A save read that is neither none (0) nor some (1) is refused.
        let mut odd = Journal::default();
        odd.loaded(&a, None);
        let mut chunk = odd.chunk_since(Journal::default().chunk_mark()).unwrap();
        *chunk.last_mut().unwrap() = 2;
        assert!(Journal::default().append_chunk(&chunk).is_err());
    }
}
