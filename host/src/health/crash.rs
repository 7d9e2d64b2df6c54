//! Crash reports: one JSON file per trap or deadline hit, written off the game threads to a directory
//! kept under a size cap (oldest first out). `warden crashes` lists them.

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// What the room knew when its instance trapped.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CrashReport {
    /// The incident id: what the player whose input trapped was told, to quote to an operator.
    #[serde(default)]
    pub id: String,
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Plugin.
    pub plugin: String,
    /// Version.
    pub version: String,
    /// Room id.
    pub room: String,
    /// Game tick.
    pub tick: u64,
    /// The export that failed (`on-message`, `on-tick`, ...).
    pub export: String,
    /// `panic`, `stack_overflow`, `memory_cap`, `other` or `deadline`.
    pub kind: String,
    /// The trap and the guest's panic message.
    pub message: String,
    /// The wasm backtrace, innermost frame first, with function names from the name section.
    pub backtrace: Vec<String>,
    /// The player whose input trapped, if it was a player's.
    pub player: Option<String>,
    /// The offending input: a message's MessagePack decoded to JSON where possible, or a timer's tag.
    pub input: Option<serde_json::Value>,
    /// The checkpoint the room was rebuilt from.
    pub checkpoint: CheckpointRef,
    /// Traps of this room within the restart-intensity window, this one included.
    pub restarts_in_window: u32,
    /// What the supervisor did: `rebuilt`, `escalated` or `closed`.
    pub outcome: String,
}

/// A new incident id: 12 hex digits, unique within the process and unlikely to repeat across restarts.
pub fn incident_id() -> String {
    use std::hash::{BuildHasher as _, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    static KEY: std::sync::OnceLock<RandomState> = std::sync::OnceLock::new();
    let n = KEY.get_or_init(RandomState::new).hash_one((SEQ.fetch_add(1, Ordering::Relaxed), crate::storage::now_ms()));
    format!("{:012x}", n & 0xffff_ffff_ffff)
}

/// Names a room checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CheckpointRef {
    /// The room's checkpoint counter.
    pub id: u64,
    /// Tick of the checkpoint.
    pub tick: u64,
    /// Version that made it.
    pub version: String,
}

/// The wasm backtrace frames of a trap message (the lines `N: 0x...` wasmtime prints).
pub fn backtrace_of(message: &str) -> Vec<String> {
    message
        .lines()
        .map(str::trim)
        .filter(|l| {
            l.split_once(':').is_some_and(|(n, rest)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && rest.contains("0x"))
        })
        .map(str::to_string)
        .collect()
}

/// A message payload as JSON if it is MessagePack, else as a hex string.
pub fn decode_input(payload: &[u8]) -> serde_json::Value {
    match crate::runtime::payload::to_json(payload) {
        Ok(v) => v,
        // Not MessagePack, or nested too deep to convert safely: the bytes, in hex (the first 4 KiB).
        Err(_) => serde_json::Value::String(payload.iter().take(4096).map(|b| format!("{b:02x}")).collect()),
    }
}

/// Starts the writer task for `dir`; reports sent to the returned channel are written in order.
pub fn start_writer(dir: PathBuf, max_bytes: u64) -> mpsc::UnboundedSender<CrashReport> {
    let (tx, mut rx) = mpsc::unbounded_channel::<CrashReport>();
    tokio::spawn(async move {
        let mut seq = 0u64;
        while let Some(report) = rx.recv().await {
            seq += 1;
            let dir = dir.clone();
            let written = tokio::task::spawn_blocking(move || write(&dir, &report, seq, max_bytes)).await;
            match written {
                Ok(Ok(path)) => tracing::info!(file = %path.display(), "crash report written"),
                Ok(Err(e)) => tracing::error!("failed to write a crash report: {e:#}"),
                Err(e) => tracing::error!("the crash report writer panicked: {e}"),
            }
        }
    });
    tx
}

fn write(dir: &Path, report: &CrashReport, seq: u64, max_bytes: u64) -> Result<PathBuf> {
    let name = format!("{}-{seq:06}-{}-{}-{}.json", report.at_ms, safe(&report.plugin), safe(&report.version), safe(&report.room));
    write_capped(dir, &name, &serde_json::to_vec_pretty(report)?, max_bytes)
}

/// `s` with every character but ASCII letters, digits and `-_.` replaced, for a file name.
pub fn safe(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect()
}

/// Writes `bytes` as `dir/name` (write-then-rename, so a reader never sees half a file), then deletes
/// the oldest `.json` files (by name) until `dir` is under `max_bytes`.
pub fn write_capped(dir: &Path, name: &str, bytes: &[u8], max_bytes: u64) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, &path)?;
    trim(dir, max_bytes)?;
    Ok(path)
}

/// Deletes the oldest reports until the directory is under `max_bytes`.
fn trim(dir: &Path, max_bytes: u64) -> Result<()> {
    let mut files = reports(dir)?;
    let mut total: u64 = files.iter().map(|(_, len)| len).sum();
    files.sort();
    for (path, len) in files {
        if total <= max_bytes {
            break;
        }
        std::fs::remove_file(&path)?;
        total -= len;
    }
    Ok(())
}

fn reports(dir: &Path) -> Result<Vec<(PathBuf, u64)>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("failed to list {}", dir.display())),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") && !name.starts_with('.') {
            out.push((entry.path(), entry.metadata()?.len()));
        }
    }
    Ok(out)
}

/// The reports in `dir`, oldest first.
pub fn list(dir: &Path) -> Result<Vec<(PathBuf, CrashReport)>> {
    list_json(dir)
}

/// The `.json` files in `dir` decoded as `T`, oldest (by name) first.
pub fn list_json<T: serde::de::DeserializeOwned>(dir: &Path) -> Result<Vec<(PathBuf, T)>> {
    let mut files = reports(dir)?;
    files.sort();
    files
        .into_iter()
        .map(|(path, _)| {
            let text = std::fs::read(&path).with_context(|| format!("failed to read {}", path.display()))?;
            let report = serde_json::from_slice(&text).with_context(|| format!("{} is not in the expected format", path.display()))?;
            Ok((path, report))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_the_numbered_lines() {
        let msg = "error while executing at wasm backtrace:\n    0: 0x1f2a - faulty::check\n    1: 0x2b3c - <faulty::Faulty as warden_sdk::Game>::on_message\nnote: using ...";
        assert_eq!(backtrace_of(msg), ["0: 0x1f2a - faulty::check", "1: 0x2b3c - <faulty::Faulty as warden_sdk::Game>::on_message"]);
    }

    #[test]
    fn the_directory_stays_under_its_cap_oldest_out() {
        let dir = tempfile::tempdir().unwrap();
        let report = |room: &str| CrashReport {
            id: incident_id(),
            at_ms: 1,
            plugin: "p".into(),
            version: "1.0.0".into(),
            room: room.into(),
            tick: 1,
            export: "on-tick".into(),
            kind: "panic".into(),
            message: "x".repeat(500),
            backtrace: vec![],
            player: None,
            input: Some(decode_input(&rmp_serde::to_vec_named(&serde_json::json!({"type": "boom"})).unwrap())),
            checkpoint: CheckpointRef { id: 1, tick: 0, version: "1.0.0".into() },
            restarts_in_window: 1,
            outcome: "rebuilt".into(),
        };
        for i in 0..10 {
            write(dir.path(), &report(&format!("r{i}")), i, 3_000).unwrap();
        }
        let left = list(dir.path()).unwrap();
        assert!(left.len() < 10 && !left.is_empty(), "{} left", left.len());
        assert_eq!(left.last().unwrap().1.room, "r9", "the newest stays");
        assert_eq!(left[0].1.input, Some(serde_json::json!({"type": "boom"})));
    }
}
