//! The wasmtime engine configuration and the thread that advances its epoch.

use crate::runtime::Limits;
use anyhow::Result;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// What a freed slot's tables keep resident at most: a small plugin's tables fit in it, and tables are
/// reset by writing all of it (the page scan is for linear memories).
const TABLE_KEEP_RESIDENT: usize = 8 << 10;

/// Builds the shared engine: pooling allocator sized by `limits`, epoch interruption for deadlines, a
/// capped wasm stack. No async support: calls are synchronous (cheaper by 3x, see DESIGN).
pub fn build(limits: &Limits) -> Result<Engine> {
    let n = limits.max_instances;
    // Core instances, memories and tables per component: what the languages' component tooling makes
    // (a plugin's own modules, the WASI adapter, shims); `limits` says why each default is what it is.
    let (cores, memories, tables) = (limits.core_instances_per_component, limits.memories_per_component, limits.tables_per_component);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(n)
        .total_core_instances(n.saturating_mul(cores))
        .total_memories(n.saturating_mul(memories))
        .total_tables(n.saturating_mul(tables))
        .max_memories_per_component(memories)
        .max_tables_per_component(tables)
        .max_core_instances_per_component(cores)
        .max_memory_size(limits.memory_bytes)
        // Return freed slots' memory to the OS 32 at a time: one madvise pass per batch instead of one
        // per dropped instance. When every room swaps at once, this halved the time to move them all
        // (`cargo bench --bench swap`).
        .decommit_batch_size(32);
    // Freed slots reset the pages their instance touched in place and keep them (see
    // `limits.keep_resident_bytes`). Only with the page scan: without it the reset would write every byte
    // of the amount (tried in the swap bench once: 1.3 s to move 1,000 rooms, against 67-92 ms).
    if limits.keep_resident_bytes > 0 && PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(wasmtime::Enabled::Yes)
            .linear_memory_keep_resident(limits.keep_resident_bytes)
            .table_keep_resident(limits.keep_resident_bytes.min(TABLE_KEEP_RESIDENT));
    }
    let mut config = Config::new();
    config.memory_init_cow(limits.memory_init_cow);
    config.epoch_interruption(true).max_wasm_stack(limits.wasm_stack_bytes).allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Ok(Engine::new(&config)?)
}

/// Advances the engine's epoch every `period` on a dedicated thread until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts ticking `engine`.
    pub fn start(engine: Engine, period: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("warden-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(period);
                    engine.increment_epoch();
                }
            })
            .expect("failed to spawn the epoch ticker thread");
        EpochTicker { stop, thread: Some(thread) }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
