//! On-disk cache of compiled components, keyed by the sha256 of the component's code (its manifest stamp left out) and
//! the engine's compatibility hash, so a second load of the same code skips Cranelift.

use anyhow::{Context as _, Result};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a loaded component came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheOutcome {
    /// Deserialized from the cache: no compilation.
    Hit,
    /// Compiled now, and written to the cache.
    Miss,
    /// Compiled now; no cache configured.
    Disabled,
}

/// Counters of the compile cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    /// Loads served from the cache.
    pub hits: u64,
    /// Loads that compiled.
    pub misses: u64,
}

pub struct CompileCache {
    dir: Option<PathBuf>,
    engine_tag: String,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Feeds `Hash` output into sha256, so the engine tag is stable across processes (std's hasher is not
/// guaranteed to be).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        unreachable!("only the sha256 digest is read")
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl CompileCache {
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Result<Self> {
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir).with_context(|| format!("failed to create the compile cache directory {}", dir.display()))?;
        }
        let mut hasher = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_tag = hex::encode(&hasher.0.finalize()[..8]);
        Ok(CompileCache { dir, engine_tag, hits: AtomicU64::new(0), misses: AtomicU64::new(0) })
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats { hits: self.hits.load(Ordering::Relaxed), misses: self.misses.load(Ordering::Relaxed) }
    }

    /// The compiled component for `bytes` (whose code hash is `sha256`), from the cache when possible.
    pub fn component(&self, engine: &Engine, bytes: &[u8], sha256: &str) -> Result<(Component, CacheOutcome)> {
        let Some(dir) = &self.dir else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return Ok((Component::new(engine, bytes)?, CacheOutcome::Disabled));
        };
        let path = dir.join(format!("{sha256}-{}.cwasm", self.engine_tag));
        if path.exists() {
            match deserialize_file(engine, &path) {
                Ok(component) => {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(sha256, path = %path.display(), "compile cache hit");
                    return Ok((component, CacheOutcome::Hit));
                }
                Err(e) => tracing::warn!(path = %path.display(), "discarding an unreadable compile cache entry: {e:#}"),
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let compiled = engine.precompile_component(bytes)?;
        write_atomically(&path, &compiled)
            .unwrap_or_else(|e| tracing::warn!(path = %path.display(), "failed to write the compile cache: {e:#}"));
        tracing::debug!(sha256, "compile cache miss: compiled");
        Ok((deserialize(engine, &compiled)?, CacheOutcome::Miss))
    }
}

/// Loads an artifact this process (or an earlier run of it) wrote into the cache directory.
#[allow(unsafe_code)]
fn deserialize_file(engine: &Engine, path: &Path) -> Result<Component> {
    // SAFETY: wasmtime requires the file to be an artifact produced by `precompile_component` of a
    // compatible engine. The cache directory is Warden's own; the file name carries the engine's
    // compatibility hash and wasmtime re-checks compatibility in the header before use.
    Ok(unsafe { Component::deserialize_file(engine, path)? })
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, compiled: &[u8]) -> Result<Component> {
    // SAFETY: `compiled` was produced by `engine.precompile_component` just now.
    Ok(unsafe { Component::deserialize(engine, compiled)? })
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
