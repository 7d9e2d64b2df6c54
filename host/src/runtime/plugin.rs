//! Loading a plugin: from bytes to a checked, compiled, pre-linked [`Plugin`].

use crate::runtime::bindings::GamePre;
use crate::runtime::cache::CacheOutcome;
use crate::runtime::instance::PluginInstance;
use crate::runtime::manifest::{self, HOST_WIT_VERSION, Kind, Manifest};
use crate::runtime::{HostState, InstanceEnv, Limits, Runtime};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::Engine;
use wasmtime::component::types::ComponentItem;

/// The exports of the `game` world, as WIT names them.
pub const GAME_EXPORTS: [&str; 8] = ["init", "on-join", "on-leave", "on-message", "on-tick", "on-timer", "snapshot", "restore"];

/// Why a file is not a plugin this host can run. Each message names the reason and the fix.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Not wasm at all.
    #[error(
        "not a WebAssembly file: it starts with {found} instead of the magic bytes 00 61 73 6d (\"\\0asm\"); check that this is the built .wasm and not another file"
    )]
    NotWasm {
        /// The first bytes, in hex.
        found: String,
    },
    /// A core module.
    #[error(
        "a core WebAssembly module, not a component: build the plugin for the wasm32-wasip2 target (cargo build --target wasm32-wasip2), which produces a component"
    )]
    CoreModule,
    /// Structurally broken.
    #[error("not a valid component: {reason} (the file may be truncated or corrupted; rebuild or copy it again)")]
    Malformed {
        /// What the parser or compiler said.
        reason: String,
    },
    /// Needs more of the instance pool than this host's `[limits]` give a component.
    #[error("{}", over_limit_message(reason, *key, *needed))]
    OverLimit {
        /// What wasmtime's pooling allocator said.
        reason: String,
        /// The `warden.toml` key that raises the limit, if one does.
        key: Option<&'static str>,
        /// What the component needs of it, when the reason says.
        needed: Option<u64>,
    },
    /// No manifest section.
    #[error(
        "no Warden manifest (custom section `warden-manifest`): build the plugin with `warden_sdk::export_game!`, or add the section with the plugin's name, version and WIT version (docs/plugins.md)"
    )]
    NoManifest,
    /// A manifest that does not parse or check.
    #[error("bad Warden manifest: {reason}")]
    BadManifest {
        /// What is wrong with it.
        reason: String,
    },
    /// Built against an incompatible WIT version.
    #[error("built against warden:plugin@{found}, which this host (warden:plugin@{host}) cannot run: rebuild it with a warden-sdk for WIT {host}", host = HOST_WIT_VERSION)]
    IncompatibleWit {
        /// The plugin's WIT version.
        found: String,
    },
    /// Does not export the `game` world.
    #[error("does not implement the Warden `game` world: missing export{} {}; it exports [{}] (a Warden plugin exports {}; build it with `warden_sdk::export_game!`)",
        if missing.len() == 1 { "" } else { "s" }, missing.join(", "), found.join(", "), GAME_EXPORTS.join(", "))]
    NotGameWorld {
        /// Exports the world needs and the component lacks.
        missing: Vec<String>,
        /// Exports the component has.
        found: Vec<String>,
    },
    /// Exports with the right names but the wrong types.
    #[error("exports of the `game` world have the wrong types: {reason} (rebuild against this host's wit/ with a matching warden-sdk)")]
    WrongExportTypes {
        /// What wasmtime's type check said.
        reason: String,
    },
    /// Imports something the host does not provide.
    #[error("imports something the host does not provide: {reason} (Warden provides warden:plugin/*@{host} and WASI 0.2; remove the dependency that imports it)", host = HOST_WIT_VERSION)]
    UnknownImport {
        /// What the linker said.
        reason: String,
    },
}

fn over_limit_message(reason: &str, key: Option<&str>, needed: Option<u64>) -> String {
    match (key, needed) {
        (Some(key), Some(n)) => format!(
            "needs more than this host allows: {reason}; raise `{key}` in the [limits] section of warden.toml to at least {n} (or pass --set limits.{}={n})",
            key.trim_start_matches("limits.")
        ),
        (Some(key), None) => format!("needs more than this host allows: {reason}; raise `{key}` in the [limits] section of warden.toml"),
        (None, _) => format!("needs more of the instance pool than this host can give any component: {reason}; make the plugin smaller"),
    }
}

/// Tells a component that breaks a limit of the instance pool (the pooling allocator checks them when
/// it compiles) from one that is broken, naming the `[limits]` key that raises the limit.
fn compile_error(reason: String) -> LoadError {
    if !reason.contains("pooling allocator") {
        return LoadError::Malformed { reason };
    }
    // wasmtime's words: "The component transitively contains 14 core module instances, which exceeds
    // the configured maximum of 8 in the pooling allocator" (a test keeps them in step).
    let counted = |what: &str| {
        let at = reason.find(what)?;
        reason[..at].split_whitespace().last()?.parse::<u64>().ok()
    };
    let (key, needed) = if let Some(n) = counted(" core module instances") {
        (Some("limits.core_instances_per_component"), Some(n))
    } else if let Some(n) = counted(" Wasm linear memories") {
        (Some("limits.memories_per_component"), Some(n))
    } else if let Some(n) = counted(" tables, which exceeds") {
        (Some("limits.tables_per_component"), Some(n))
    } else if reason.contains("memory does not fit") {
        (Some("limits.memory_bytes"), None)
    } else {
        (None, None)
    };
    LoadError::OverLimit { reason, key, needed }
}

/// A checked, compiled plugin, ready to instantiate any number of times.
pub struct Plugin {
    manifest: Manifest,
    sha256: String,
    size: usize,
    compile_time: Duration,
    cache: CacheOutcome,
    exports: Vec<String>,
    imports: Vec<String>,
    name: Arc<str>,
    engine: Engine,
    limits: Limits,
    pre: GamePre<HostState>,
    live: Arc<std::sync::atomic::AtomicUsize>,
}

pub(crate) fn load(rt: &Runtime, bytes: &[u8]) -> Result<Plugin, LoadError> {
    let Kind::Component = manifest::sniff(bytes)?;
    let section = manifest::find_section(bytes)?;
    let sha256 = hex::encode(Sha256::digest(bytes));

    let started = Instant::now();
    let (component, cache) =
        rt.cache.component(&rt.engine, bytes, &manifest::code_hash(bytes)).map_err(|e| compile_error(format!("{e:#}")))?;
    let compile_time = started.elapsed();

    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(&rt.engine).map(|(name, _)| name.to_string()).collect();
    let imports: Vec<String> = ty.imports(&rt.engine).map(|(name, _)| name.to_string()).collect();
    let missing: Vec<String> = GAME_EXPORTS.iter().filter(|e| !exports.iter().any(|x| x == *e)).map(|e| e.to_string()).collect();
    if !missing.is_empty() {
        return Err(LoadError::NotGameWorld { missing, found: exports });
    }
    if let Some((name, _)) =
        ty.exports(&rt.engine).find(|(name, item)| GAME_EXPORTS.contains(name) && !matches!(item.ty, ComponentItem::ComponentFunc(_)))
    {
        return Err(LoadError::WrongExportTypes { reason: format!("export `{name}` is not a function") });
    }
    let instance_pre = rt.linker.instantiate_pre(&component).map_err(|e| LoadError::UnknownImport { reason: format!("{e:#}") })?;
    let pre = GamePre::new(instance_pre).map_err(|e| LoadError::WrongExportTypes { reason: format!("{e:#}") })?;

    let manifest = manifest::parse(&section.ok_or(LoadError::NoManifest)?)?;
    tracing::debug!(plugin = %manifest.name, version = %manifest.version, ?cache, ?compile_time, "loaded plugin");
    Ok(Plugin {
        name: manifest.name.as_str().into(),
        manifest,
        sha256,
        size: bytes.len(),
        compile_time,
        cache,
        exports,
        imports,
        engine: rt.engine.clone(),
        limits: rt.limits.clone(),
        pre,
        live: rt.live.clone(),
    })
}

impl Plugin {
    /// The embedded manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    /// Hex sha256 of the component bytes.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
    /// Size of the component in bytes.
    pub fn size(&self) -> usize {
        self.size
    }
    /// How long compiling (or loading from the cache) took.
    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }
    /// Whether the compile cache served this load.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.cache
    }
    /// The component's export names.
    pub fn exports(&self) -> &[String] {
        &self.exports
    }
    /// The component's import names.
    pub fn imports(&self) -> &[String] {
        &self.imports
    }
    /// The limits its instances run under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
    /// The pre-linked component, for callers that drive raw bindings (benchmarks).
    pub fn pre(&self) -> &GamePre<HostState> {
        &self.pre
    }

    /// A store for an instance of this plugin in `env`: host state, memory limiter, and an epoch
    /// deadline already set (instantiation runs guest code too), with instantiation's budget.
    pub fn new_store(&self, env: InstanceEnv) -> wasmtime::Store<HostState> {
        let mut state = HostState::new(self.name.clone(), env, &self.limits);
        state.slot = Some(crate::runtime::host_state::Slot::take(&self.live));
        let mut store = wasmtime::Store::new(&self.engine, state);
        store.limiter(|s| s as &mut dyn wasmtime::ResourceLimiter);
        // Instantiation runs under its own budget; every call then starts its own (`PluginInstance::call`).
        // (The host state's probe starts with the same budget.)
        store.set_epoch_deadline(self.limits.instantiate_deadline().ticks);
        store.epoch_deadline_callback(move |mut ctx| {
            let cpu = crate::runtime::deadline::thread_cpu_time();
            Ok(ctx.data_mut().deadline.decide(cpu, std::time::Instant::now()))
        });
        store
    }

    /// A new instance in `env`. Neither `init` nor `restore` has run yet.
    pub fn instantiate(&self, env: InstanceEnv) -> anyhow::Result<PluginInstance> {
        let mut store = self.new_store(env);
        let game = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| anyhow::anyhow!("failed to instantiate {} {}: {e:#}", self.manifest.name, self.manifest.version))?;
        Ok(PluginInstance::new(store, game, &self.limits))
    }
}
