//! The plugin-directory watcher: filesystem events (notify, debounced) plus a periodic rescan for events
//! that were missed. A `.wasm` is handed on only once it has stopped changing (size and modification
//! time unchanged for `deploy.settle_ms`) and its `.minisig` is there (or `deploy.signature_wait_ms` has
//! passed, and the pipeline rejects it as unsigned). Dotfiles and temp names are ignored, so
//! write-then-rename (what `warden push` does) is never seen half-way; a slow copy without it is seen
//! only once complete.

use super::{Candidate, is_candidate_name, wasm_of};
use crate::config::DeployConfig;
use anyhow::{Context as _, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The `.wasm` files of the plugin directory that the deployer looks at, sorted.
pub fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("failed to read the plugin directory {}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(is_candidate_name))
        .collect();
    files.sort();
    Ok(files)
}

/// What a file and its signature look like now: sizes and modification times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    wasm: (u64, SystemTime),
    sig: Option<(u64, SystemTime)>,
}

fn stamp(wasm: &Path) -> Option<Stamp> {
    let of = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
    Some(Stamp { wasm: of(wasm)?, sig: of(&super::sign::signature_path(wasm)) })
}

struct Pending {
    stamp: Option<Stamp>,
    stable_since: Instant,
    first_seen: Instant,
}

/// A running watcher; stops when dropped or when its token is cancelled.
pub struct Watcher {
    _debouncer: notify_debouncer_mini::Debouncer<notify::RecommendedWatcher>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Watcher {
    /// Watches `dir`; files present now count as seen. Candidates go to `out`.
    pub fn start(dir: &Path, cfg: &DeployConfig, out: mpsc::Sender<Candidate>, stop: CancellationToken) -> Result<Watcher> {
        // Events name files by absolute path: list the directory by the same path, so one file is one key.
        let dir = &dir.canonicalize().with_context(|| format!("the plugin directory {} is not accessible", dir.display()))?;
        let (events_tx, mut events) = mpsc::unbounded_channel::<PathBuf>();
        let mut debouncer = notify_debouncer_mini::new_debouncer(Duration::from_millis(cfg.debounce_ms.max(1)), move |res| match res {
            Ok(batch) => {
                for event in batch {
                    let notify_debouncer_mini::DebouncedEvent { path, .. } = event;
                    let _ = events_tx.send(path);
                }
            }
            Err(e) => tracing::warn!("plugin directory watch error (the rescan covers it): {e}"),
        })
        .context("failed to start the plugin directory watcher")?;
        debouncer
            .watcher()
            .watch(dir, notify::RecursiveMode::NonRecursive)
            .with_context(|| format!("failed to watch the plugin directory {}", dir.display()))?;

        let mut seen: HashMap<PathBuf, Stamp> = list(dir)?.into_iter().filter_map(|p| Some((p.clone(), stamp(&p)?))).collect();
        let settle = Duration::from_millis(cfg.settle_ms);
        let sig_wait = Duration::from_millis(cfg.signature_wait_ms);
        let check_every = Duration::from_millis((cfg.settle_ms / 4).clamp(10, 100));
        let (dir, rescan_every) = (dir.to_path_buf(), Duration::from_millis(cfg.rescan_ms.max(10)));
        let task = tokio::spawn(async move {
            let mut pending: HashMap<PathBuf, Pending> = HashMap::new();
            let mut check = tokio::time::interval(check_every);
            let mut rescan = tokio::time::interval(rescan_every);
            let add = |pending: &mut HashMap<PathBuf, Pending>, path: PathBuf| {
                pending.entry(path).or_insert_with(|| Pending { stamp: None, stable_since: Instant::now(), first_seen: Instant::now() });
            };
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    Some(path) = events.recv() => {
                        let path = path.parent().and_then(|p| p.canonicalize().ok()).map_or(path.clone(), |p| p.join(path.file_name().unwrap_or_default()));
                        if let Some(wasm) = wasm_of(&path) {
                            add(&mut pending, wasm);
                        }
                    }
                    _ = rescan.tick() => {
                        for path in list(&dir).unwrap_or_default() {
                            if !pending.contains_key(&path) && stamp(&path).is_some_and(|s| seen.get(&path) != Some(&s)) {
                                tracing::debug!(file = %path.display(), "rescan found a new or changed file");
                                add(&mut pending, path);
                            }
                        }
                    }
                    _ = check.tick() => {
                        let mut ready = Vec::new();
                        pending.retain(|path, p| {
                            let Some(now) = stamp(path) else {
                                seen.remove(path);
                                return false; // gone (renamed away or deleted)
                            };
                            if p.stamp != Some(now) {
                                p.stamp = Some(now);
                                p.stable_since = Instant::now();
                                return true;
                            }
                            if p.stable_since.elapsed() < settle || (now.sig.is_none() && p.first_seen.elapsed() < sig_wait) {
                                return true;
                            }
                            if seen.get(path) != Some(&now) {
                                seen.insert(path.clone(), now);
                                ready.push(Candidate::file(path.clone(), p.first_seen));
                            }
                            false
                        });
                        for candidate in ready {
                            tracing::info!(file = %candidate.path.display(), "new plugin file settled: checking it");
                            if out.send(candidate).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        });
        Ok(Watcher { _debouncer: debouncer, task })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One file, seen by both a filesystem event and the rescan, under a directory named by a relative
    /// path (events arrive with absolute paths): it is handed on once.
    #[tokio::test]
    async fn a_file_is_handed_on_once_however_the_directory_is_spelled() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("plugins")).unwrap();
        // The same directory, relative to the working directory (without changing it).
        let cwd = std::env::current_dir().unwrap();
        let mut spelled = PathBuf::new();
        for _ in cwd.components().skip(1) {
            spelled.push("..");
        }
        spelled.push(tmp.path().join("plugins").strip_prefix("/").unwrap());
        assert!(spelled.is_relative() && spelled.is_dir(), "{}", spelled.display());
        let cfg = DeployConfig { debounce_ms: 10, settle_ms: 50, rescan_ms: 20, signature_wait_ms: 50, ..DeployConfig::default() };
        let (tx, mut rx) = mpsc::channel(16);
        let stop = CancellationToken::new();
        let _watcher = Watcher::start(&spelled, &cfg, tx, stop.clone()).unwrap();
        for name in ["a-1.0.0.wasm.minisig", "a-1.0.0.wasm"] {
            std::fs::write(tmp.path().join("plugins").join(format!(".{name}.tmp")), b"x").unwrap();
            std::fs::rename(tmp.path().join("plugins").join(format!(".{name}.tmp")), tmp.path().join("plugins").join(name)).unwrap();
        }
        let first = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        assert!(first.path.ends_with("a-1.0.0.wasm"), "{first:?}");
        // Several rescans and settle periods later, nothing more.
        let again = tokio::time::timeout(Duration::from_millis(600), rx.recv()).await;
        assert!(again.is_err(), "handed on twice: {first:?} then {again:?}");
        stop.cancel();
    }
}
