//! A room dump on disk: its checkpoint and journal, with what the room was when dumped, as JSON that a
//! person can read and [`DumpFile::replay`] can re-run offline against a plugin file. A crash or a bug
//! report becomes reproducible on a laptop: `warden room GAME ROOM --dump FILE`, then
//! `warden replay FILE --plugin GAME-VERSION.wasm`.

use super::RoomDump;
use super::journal::{self, Base, Entry, Journal, Timer};
use crate::runtime::{InstanceEnv, Plugin, RoomRng};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The format tag of this version of the file.
pub const FORMAT: &str = "warden-room-dump/2";

/// Earlier formats this version still reads: `/1` had no `loaded` entries (its rooms' replays read
/// saves as the store held them at the replay).
const READS: [&str; 2] = [FORMAT, "warden-room-dump/1"];

/// A room's dump.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DumpFile {
    /// [`FORMAT`].
    pub format: String,
    /// Game (plugin) name.
    pub game: String,
    /// Room id.
    pub room: String,
    /// The version the room was running.
    pub version: String,
    /// The tick it was at.
    pub tick: u64,
    /// Its tick rate (game time is `tick * 1000 / tick_hz` ms).
    pub tick_hz: u32,
    /// Its random seed.
    pub seed: u64,
    /// Its players.
    pub players: Vec<String>,
    /// Feature switches that were on when it was dumped.
    pub features: Vec<String>,
    /// The checkpoint the journal starts from.
    pub checkpoint: DumpCheckpoint,
    /// Every plugin call since the checkpoint, in order.
    pub journal: Vec<DumpEntry>,
    /// `snapshot()` of the live room when dumped (base64), if it answered.
    pub snapshot: Option<String>,
    /// sha256 of those bytes (hex).
    pub snapshot_sha256: Option<String>,
}

/// A checkpoint in a [`DumpFile`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DumpCheckpoint {
    /// Its id within the room.
    pub id: u64,
    /// The version that made it.
    pub version: String,
    /// The tick it was taken after.
    pub tick: u64,
    /// The room's hash key (keys the guest's hash maps; secret to players, here for an exact replay).
    pub hash_key: u64,
    /// Random numbers drawn by then.
    pub draws: u64,
    /// Timers pending then.
    pub timers: Vec<Timer>,
    /// The timer sequence counter then.
    pub timer_seq: u64,
    /// The feature switches on then (absent in dumps from before switches were journaled: the dump's
    /// `features` then).
    #[serde(default)]
    pub features: Option<Vec<String>>,
    /// The `snapshot()` bytes (base64).
    pub state: String,
}

/// One journaled call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum DumpEntry {
    /// The calls after this ran at `tick`.
    Begin {
        /// Tick.
        tick: u64,
    },
    /// `on-join`.
    Join {
        /// Player.
        player: String,
    },
    /// `on-leave`.
    Leave {
        /// Player.
        player: String,
    },
    /// `on-message`.
    Msg {
        /// Player.
        player: String,
        /// The MessagePack payload (base64).
        payload: String,
        /// The same payload as JSON, to read (ignored by the replay).
        #[serde(default)]
        decoded: serde_json::Value,
    },
    /// `on-timer`.
    Timer {
        /// The plugin's tag.
        tag: String,
    },
    /// `on-tick`.
    Tick {
        /// Milliseconds per tick.
        dt_ms: u32,
    },
    /// The feature switches on from here.
    Features {
        /// Their names.
        on: Vec<String>,
    },
    /// A save the call before it read (`load-save`); the replay hands it to that call again.
    Loaded {
        /// Whose save.
        player: String,
        /// The save's bytes (base64), or none if the player had none.
        save: Option<String>,
        /// The same bytes as JSON, to read (ignored by the replay).
        #[serde(default)]
        decoded: serde_json::Value,
    },
}

/// The result of a replay.
pub struct Replay {
    /// `snapshot()` after the replay.
    pub snapshot: Vec<u8>,
    /// Calls replayed.
    pub calls: usize,
    /// Journal entries that trapped and were skipped.
    pub skipped: Vec<usize>,
}

impl DumpFile {
    /// The file for `dump` of room `room` of `game`.
    pub fn new(game: &str, room: &str, dump: &RoomDump) -> DumpFile {
        let journal = dump
            .journal
            .entries()
            .map(|e| match e {
                Entry::Begin(tick) => DumpEntry::Begin { tick },
                Entry::Join(p) => DumpEntry::Join { player: p.to_string() },
                Entry::Leave(p) => DumpEntry::Leave { player: p.to_string() },
                Entry::Msg(p, payload) => DumpEntry::Msg {
                    player: p.to_string(),
                    decoded: crate::health::crash::decode_input(&payload),
                    payload: B64.encode(&payload),
                },
                Entry::Timer(tag) => DumpEntry::Timer { tag },
                Entry::Tick(dt_ms) => DumpEntry::Tick { dt_ms },
                Entry::Features(on) => DumpEntry::Features { on: on.iter().cloned().collect() },
                Entry::Loaded(p, save) => DumpEntry::Loaded {
                    player: p.to_string(),
                    decoded: save.as_deref().map(crate::health::crash::decode_input).unwrap_or_default(),
                    save: save.map(|s| B64.encode(s)),
                },
            })
            .collect();
        let b = &dump.base;
        DumpFile {
            format: FORMAT.into(),
            game: game.into(),
            room: room.into(),
            version: dump.version.clone(),
            tick: dump.tick,
            tick_hz: dump.tick_hz,
            seed: dump.seed,
            players: dump.players.clone(),
            features: dump.features.clone(),
            checkpoint: DumpCheckpoint {
                id: b.id,
                version: b.version().to_string(),
                tick: b.tick,
                hash_key: b.hash_key,
                draws: b.draws,
                timers: b.timers.clone(),
                timer_seq: b.timer_seq,
                features: Some(b.features.iter().cloned().collect()),
                state: B64.encode(&b.state),
            },
            journal,
            snapshot: dump.state.as_ref().map(|s| B64.encode(s)),
            snapshot_sha256: dump.state.as_ref().map(|s| sha256(s)),
        }
    }

    /// Reads a dump file, checking its format.
    pub fn parse(json: &[u8]) -> anyhow::Result<DumpFile> {
        let file: DumpFile = serde_json::from_slice(json).map_err(|e| anyhow::anyhow!("not a Warden room dump: {e}"))?;
        if !READS.contains(&file.format.as_str()) {
            anyhow::bail!("this dump's format is {:?}; this warden reads {}", file.format, READS.join(" and "));
        }
        Ok(file)
    }

    /// The live room's snapshot bytes.
    pub fn snapshot_bytes(&self) -> anyhow::Result<Option<Vec<u8>>> {
        self.snapshot.as_ref().map(|s| B64.decode(s).map_err(|e| anyhow::anyhow!("the dump's snapshot is not base64: {e}"))).transpose()
    }

    /// Re-runs the room offline: restores the checkpoint into `plugin` (which must be the version the
    /// room was running) in an environment with the room's seed, hash key, clock and switches (as they
    /// were at the checkpoint, then as the journal changes them), replays
    /// the journal with every send dropped, and snapshots the result.
    pub fn replay(&self, plugin: &Plugin) -> anyhow::Result<Replay> {
        let m = plugin.manifest();
        if m.name != self.game || m.version != self.version {
            anyhow::bail!(
                "the room ran {} {}, and this plugin file is {} {}: replay it against {}-{}.wasm",
                self.game,
                self.version,
                m.name,
                m.version,
                self.game,
                self.version
            );
        }
        let c = &self.checkpoint;
        let bytes = |what: &str, s: &str| B64.decode(s).map_err(|e| anyhow::anyhow!("the dump's {what} is not base64: {e}"));
        let base = Base {
            id: c.id,
            version: c.version.as_str().into(),
            tick: c.tick,
            seed: self.seed,
            hash_key: c.hash_key,
            draws: c.draws,
            timers: c.timers.clone(),
            timer_seq: c.timer_seq,
            features: Arc::new(c.features.as_ref().unwrap_or(&self.features).iter().cloned().collect()),
            players: Vec::new(),
            state: bytes("checkpoint", &c.state)?,
        };
        let mut journal = Journal::default();
        for entry in &self.journal {
            let entry = match entry {
                DumpEntry::Begin { tick } => Entry::Begin(*tick),
                DumpEntry::Join { player } => Entry::Join(Arc::from(player.as_str())),
                DumpEntry::Leave { player } => Entry::Leave(Arc::from(player.as_str())),
                DumpEntry::Msg { player, payload, .. } => Entry::Msg(Arc::from(player.as_str()), bytes("payload", payload)?),
                DumpEntry::Timer { tag } => Entry::Timer(tag.clone()),
                DumpEntry::Tick { dt_ms } => Entry::Tick(*dt_ms),
                DumpEntry::Features { on } => Entry::Features(Arc::new(on.iter().cloned().collect())),
                DumpEntry::Loaded { player, save, .. } => {
                    Entry::Loaded(Arc::from(player.as_str()), save.as_deref().map(|s| bytes("save", s)).transpose()?)
                }
            };
            journal.push(&entry);
        }
        let mut env = InstanceEnv::standalone(&self.room, self.seed);
        env.rng = Arc::new(RoomRng::with_hash_key(self.seed, c.hash_key));
        let mut replayed = journal::replay(plugin, &env, self.tick_hz, &base, &journal, &[])?;
        let snapshot = replayed.instance.snapshot().map_err(|e| anyhow::anyhow!("snapshot after the replay failed: {e}"))?;
        Ok(Replay { snapshot, calls: replayed.calls, skipped: replayed.skipped })
    }
}

/// Hex sha256.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}
