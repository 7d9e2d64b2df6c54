//! The wasmtime engine configuration and the thread that advances its epoch.

use crate::runtime::Limits;
use anyhow::Result;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Core instances, memories and tables a Rust `wasm32-wasip2` component uses at most: its own module, the
/// WASI adapter and the small shim modules wit-component adds.
const CORE_INSTANCES_PER_COMPONENT: u32 = 8;
const MEMORIES_PER_COMPONENT: u32 = 2;
const TABLES_PER_COMPONENT: u32 = 8;

/// Builds the shared engine: pooling allocator sized by `limits`, epoch interruption for deadlines, a
/// capped wasm stack. No async support: calls are synchronous (cheaper by 3x, see DESIGN).
pub fn build(limits: &Limits) -> Result<Engine> {
    let n = limits.max_instances;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(n)
        .total_core_instances(n * CORE_INSTANCES_PER_COMPONENT)
        .total_memories(n * MEMORIES_PER_COMPONENT)
        .total_tables(n * TABLES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .max_memory_size(limits.memory_bytes)
        // Return freed slots' memory to the OS 32 at a time: one madvise pass per batch instead of one
        // per dropped instance. When every room swaps at once, this halved the time to move them all
        // (`cargo bench --bench swap`).
        .decommit_batch_size(32);
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
