//! The plugin runtime: engine, compile cache, bindings, loading and instances.
//!
//! One [`Runtime`] per process owns the wasmtime engine (pooling allocator, epoch deadlines, memory and
//! stack caps) and the linker with the host imports. [`Runtime::load`] checks and compiles a component
//! into a [`Plugin`]; [`Plugin::instantiate`] gives a [`PluginInstance`] to call.

pub mod bindings;
mod cache;
mod deadline;
mod engine;
mod host_state;
mod imports;
mod instance;
mod limits;
pub mod manifest;
pub mod payload;
mod plugin;
mod saves;
mod wasi;

pub use bindings::warden::plugin::types::{LogLevel, Recipient, RoomInfo, SavePriority};
pub use cache::{CacheOutcome, CacheStats};
pub use host_state::{Features, GameClock, HostState, InstanceEnv, Kick, MetricSum, Outgoing, RoomRng, SaveRead, TimerRequest, random_at};
pub use imports::{LimitExceeded, SaveNotLoaded};
pub(crate) use instance::panic_message;
pub use instance::{CallError, PluginInstance, TrapKind};
pub use limits::Limits;
pub use manifest::{HOST_WIT_VERSION, MANIFEST_SECTION, Manifest};
pub use plugin::{GAME_EXPORTS, LoadError, Plugin};
pub use saves::{Durable, MemorySaves, Preload, SaveBackend};
pub use wasi::{LogBudget, WouldBlock};

use anyhow::{Context as _, Result};
use std::path::PathBuf;
use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker};

/// The process-wide plugin runtime.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    limits: Limits,
    cache: cache::CompileCache,
    /// Stores alive (instances of any plugin loaded by this runtime): pool slots in use.
    live: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _ticker: engine::EpochTicker,
}

impl Runtime {
    /// Builds the engine for `limits` and starts its epoch ticker. `cache_dir` keeps compiled
    /// components across runs (keyed by content and engine); `None` compiles every load.
    pub fn new(limits: Limits, cache_dir: Option<PathBuf>) -> Result<Self> {
        limits.validate()?;
        let engine = engine::build(&limits).context("failed to build the wasmtime engine")?;
        let mut linker = Linker::new(&engine);
        wasi::add_to_linker(&mut linker).map_err(anyhow::Error::from).context("failed to link WASI")?;
        bindings::Game::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)
            .context("failed to link the warden:plugin host imports")?;
        let cache = cache::CompileCache::new(&engine, cache_dir)?;
        let ticker = engine::EpochTicker::start(engine.clone(), limits.epoch_tick());
        Ok(Runtime { engine, linker, limits, cache, live: Default::default(), _ticker: ticker })
    }

    /// The shared engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The limits every instance runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Instances alive now, of every plugin this runtime loaded (each holds a slot of the pooling
    /// allocator, of which there are `limits.max_instances`).
    pub fn live_instances(&self) -> usize {
        self.live.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How often the compile cache was hit and missed.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Checks and compiles a plugin: a component of the `game` world carrying a Warden manifest of a
    /// compatible WIT version. Every failure names what is wrong and how to fix it.
    pub fn load(&self, bytes: &[u8]) -> Result<Plugin, LoadError> {
        plugin::load(self, bytes)
    }
}
