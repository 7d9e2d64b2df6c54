//! The game threads: rooms run on a Tokio runtime of their own, apart from the one that accepts
//! connections, runs sessions and serves the admin endpoint. When rooms overload the machine (every room
//! spending most of its tick budget), a network task never waits behind a room on the same worker: the
//! kernel schedules the network and admin threads on their own, so the rooms that run late are the
//! ones that slow down, not the accept loop, `/health` or the WebSocket handshakes. Their own runtime
//! is what does it; `rooms.nice` can also lower their priority (0 by default).

use anyhow::{Context as _, Result};

/// The game-thread runtime. Dropping it stops its threads without waiting (rooms are shut down first).
pub struct GameThreads {
    runtime: Option<tokio::runtime::Runtime>,
}

impl GameThreads {
    /// `threads` worker threads named `warden-room-N`, each at nice value `nice` (0 leaves the priority
    /// alone; raising it needs no privilege).
    pub fn start(threads: usize, nice: i32) -> Result<GameThreads> {
        let n = std::sync::atomic::AtomicUsize::new(0);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name_fn(move || format!("warden-room-{}", n.fetch_add(1, std::sync::atomic::Ordering::Relaxed)))
            .on_thread_start(move || lower_priority(nice))
            .enable_all()
            .build()
            .context("failed to start the game threads")?;
        Ok(GameThreads { runtime: Some(runtime) })
    }

    /// Where room tasks are spawned.
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.runtime.as_ref().expect("running until dropped").handle().clone()
    }
}

impl Drop for GameThreads {
    fn drop(&mut self) {
        // A runtime may not be dropped (which blocks) from async code; its tasks have ended by now.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Sets the calling thread's nice value (Linux schedules threads individually).
#[allow(unsafe_code)]
fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    // SAFETY: gettid and setpriority take no pointers; PRIO_PROCESS with a thread id addresses that
    // thread on Linux.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) };
    if rc != 0 {
        tracing::warn!("failed to lower the game thread's priority to nice {nice}: {}", std::io::Error::last_os_error());
    }
}

/// The nice value of the calling thread (for tests).
#[allow(unsafe_code)]
pub fn current_nice() -> i32 {
    // SAFETY: as above; getpriority returns the value (errno distinguishes -1, which we do not use).
    unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn game_threads_are_named_and_run_at_a_lower_priority() {
        let threads = GameThreads::start(2, 5).unwrap();
        let (name, nice) = threads
            .handle()
            .block_on(async { tokio::spawn(async { (std::thread::current().name().map(str::to_string), current_nice()) }).await.unwrap() });
        assert!(name.is_some_and(|n| n.starts_with("warden-room-")));
        // The configured value is absolute. From a thread already nicer than that (a test run under
        // `nice`), only a privileged process may go back down to it.
        let base = current_nice();
        if base <= 5 {
            assert_eq!(nice, 5, "the game threads run at nice 5, as configured");
        } else {
            assert!(nice == 5 || nice == base, "nice {nice} from a thread at {base}");
        }
    }
}
