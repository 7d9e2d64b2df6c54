//! Getting plugins into the server. Today: load the newest version of each plugin found in the plugin
//! directory at start (unsigned files only in dev mode). Signature checks, the watcher and hot swaps
//! arrive with the deploy issue.

use crate::runtime::{Plugin, Runtime};
use anyhow::{Context as _, Result, bail};
use std::collections::BTreeMap;
use std::path::Path;

/// Loads every `*.wasm` in `dir` and keeps the newest version of each plugin name. A file that does
/// not load is reported and skipped; the others still load.
pub fn load_dir(rt: &Runtime, dir: &Path, dev: bool) -> Result<BTreeMap<String, Plugin>> {
    if !dev {
        bail!(
            "plugin signatures are not checked yet (that arrives with hot deploy), so only --dev may load plugins: \
             restart with --dev to run unsigned plugins from {}",
            dir.display()
        );
    }
    tracing::warn!(
        "DEV MODE: loading UNSIGNED plugins from {} and admitting anonymous guests; never run this in production",
        dir.display()
    );
    let entries = std::fs::read_dir(dir).with_context(|| format!("failed to read the plugin directory {}", dir.display()))?;
    let mut newest: BTreeMap<String, Plugin> = BTreeMap::new();
    let mut files: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    for path in files {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with('.') || path.extension().is_none_or(|e| e != "wasm") {
            continue;
        }
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::error!("skipping {}: failed to read it: {e}", path.display());
                continue;
            }
        };
        let plugin = match rt.load(&bytes) {
            Ok(plugin) => plugin,
            Err(e) => {
                tracing::error!("skipping {}: {e}", path.display());
                continue;
            }
        };
        let m = plugin.manifest();
        tracing::info!(plugin = %m.name, version = %m.version, file = %path.display(), "loaded plugin");
        match newest.get(&m.name) {
            Some(have) if have.manifest().semver() >= m.semver() => {}
            _ => {
                newest.insert(m.name.clone(), plugin);
            }
        }
    }
    Ok(newest)
}
