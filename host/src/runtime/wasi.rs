//! WASI for plugins, served on the game thread without ever blocking it.
//!
//! wasmtime-wasi's synchronous bindings run every potentially blocking operation (`blocking-write`,
//! `poll`, `pollable.ready`, even dropping a stream) through `block_on` on a Tokio runtime. On a room's
//! Tokio worker that panics ("Cannot start a runtime from within a runtime"), and anywhere it could park
//! the thread for as long as the guest likes. So Warden links WASI itself:
//! - `wasi:io/poll` and `wasi:io/streams` poll each operation exactly once. What is ready completes;
//!   what would have to wait traps with [`WouldBlock`], a clean error naming what the plugin waited on.
//! - stdout and stderr are [`GuestOutput`] streams: always ready, never full. Complete lines go to the
//!   log (target `warden::plugin`, with the plugin, room and tick, inside the room's span), limited per
//!   room by the same [`LogBudget`] as the `log` import; a partial line is held up to
//!   [`Limits::log_line_bytes`](crate::runtime::Limits) and cut there.
//! - `wasi:clocks/monotonic-clock` pollables wait on the room's game clock, which only moves between
//!   ticks: a zero wait is ready, any other wait inside a call would never end and is refused.
//! - `wasi:sockets` is linked so that components importing it load, but a plugin has no network:
//!   creating a socket answers `access-denied` (so none of the blocking socket calls can be reached),
//!   and name lookups are denied.
//! - The filesystem has no preopened directory, stdin is empty, the environment is empty.

use crate::runtime::{GameClock, HostState};
use bytes::Bytes;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, io as async_io, random, sync};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, StreamError, StreamResult};
use wasmtime_wasi::{WasiView, cli::IsTerminal, cli::StdoutStream};

/// A plugin waited on something that is not ready inside a game call. The call traps with it.
#[derive(Debug, thiserror::Error)]
#[error(
    "the plugin blocked on {what} inside a game call; a game call must never wait (game time only moves between ticks: use set-timer instead of sleeping or polling)"
)]
pub struct WouldBlock {
    /// What it waited on.
    pub what: &'static str,
}

/// Runs `f` until it would wait: its output if it completes on the first poll, else `None`. Nothing
/// here needs a runtime or a waker: a future that is not ready now is dropped.
fn poll_once<F: Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => Some(out),
        Poll::Pending => None,
    }
}

fn would_block(what: &'static str) -> wasmtime::Error {
    wasmtime::Error::new(WouldBlock { what })
}

/// Links every WASI interface a plugin may import, in the non-blocking forms described above.
pub fn add_to_linker(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView as _};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView as _};
    use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView as _};
    use wasmtime_wasi::random::WasiRandom;
    clocks::wall_clock::add_to_linker::<HostState, WasiClocks>(l, |s| s.clocks())?;
    clocks::monotonic_clock::add_to_linker::<HostState, GameTimeData>(l, |s| {
        let clock = s.env().clock.clone();
        GameTime { table: &mut s.table, clock }
    })?;
    filesystem::preopens::add_to_linker::<HostState, WasiFilesystem>(l, |s| s.filesystem())?;
    // Without a preopened directory no descriptor exists, so none of its (blocking) methods can run.
    sync::filesystem::types::add_to_linker::<HostState, WasiFilesystem>(l, |s| s.filesystem())?;
    random::random::add_to_linker::<HostState, WasiRandom>(l, |s| s.ctx().ctx.random())?;
    random::insecure::add_to_linker::<HostState, WasiRandom>(l, |s| s.ctx().ctx.random())?;
    random::insecure_seed::add_to_linker::<HostState, WasiRandom>(l, |s| s.ctx().ctx.random())?;
    cli::exit::add_to_linker::<HostState, WasiCli>(l, |s| s.cli())?;
    cli::environment::add_to_linker::<HostState, WasiCli>(l, |s| s.cli())?;
    cli::stdin::add_to_linker::<HostState, WasiCli>(l, |s| s.cli())?;
    cli::stdout::add_to_linker::<HostState, WasiCli>(l, |s| s.cli())?;
    cli::stderr::add_to_linker::<HostState, WasiCli>(l, |s| s.cli())?;
    cli::terminal_input::add_to_linker::<HostState, WasiCli>(l, |s| s.cli())?;
    cli::terminal_output::add_to_linker::<HostState, WasiCli>(l, |s| s.cli())?;
    cli::terminal_stdin::add_to_linker::<HostState, WasiCli>(l, |s| s.cli())?;
    cli::terminal_stdout::add_to_linker::<HostState, WasiCli>(l, |s| s.cli())?;
    cli::terminal_stderr::add_to_linker::<HostState, WasiCli>(l, |s| s.cli())?;
    use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView as _};
    wasmtime_wasi::p2::bindings::sockets::instance_network::add_to_linker::<HostState, WasiSockets>(l, |s| s.sockets())?;
    wasmtime_wasi::p2::bindings::sockets::network::add_to_linker::<HostState, WasiSockets>(l, &Default::default(), |s| s.sockets())?;
    wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::add_to_linker::<HostState, WasiSockets>(l, |s| s.sockets())?;
    // TCP sockets are refused at creation by the context (`allow_tcp(false)`).
    wasmtime_wasi::p2::bindings::sockets::tcp_create_socket::add_to_linker::<HostState, WasiSockets>(l, |s| s.sockets())?;
    sync::sockets::tcp::add_to_linker::<HostState, WasiSockets>(l, |s| s.sockets())?;
    sync::sockets::udp::add_to_linker::<HostState, WasiSockets>(l, |s| s.sockets())?;
    sync::sockets::udp_create_socket::add_to_linker::<HostState, NoNetworkData>(l, |_| NoNetwork)?;
    async_io::error::add_to_linker::<HostState, IoData>(l, |s| &mut s.table)?;
    sync::io::poll::add_to_linker::<HostState, NonBlockingData>(l, |s| NonBlocking(&mut s.table))?;
    sync::io::streams::add_to_linker::<HostState, NonBlockingData>(l, |s| NonBlocking(&mut s.table))?;
    Ok(())
}

/// `wasi:sockets/udp-create-socket`, refused (wasmtime-wasi's own would `block_on` before checking).
struct NoNetwork;
struct NoNetworkData;
impl HasData for NoNetworkData {
    type Data<'a> = NoNetwork;
}

impl wasmtime_wasi::p2::bindings::sockets::network::Host for NoNetwork {
    fn convert_error_code(&mut self, error: wasmtime_wasi::p2::SocketError) -> wasmtime::Result<sync::sockets::network::ErrorCode> {
        error.downcast()
    }
    fn network_error_code(
        &mut self,
        _err: Resource<wasmtime_wasi::p2::bindings::sockets::network::Error>,
    ) -> wasmtime::Result<Option<sync::sockets::network::ErrorCode>> {
        Ok(None)
    }
}

// Required by the bindings as a supertrait; the `network` resource itself is linked by wasmtime-wasi.
impl wasmtime_wasi::p2::bindings::sockets::network::HostNetwork for NoNetwork {
    fn drop(&mut self, _rep: Resource<wasmtime_wasi::p2::Network>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl sync::sockets::udp_create_socket::Host for NoNetwork {
    fn create_udp_socket(
        &mut self,
        _family: sync::sockets::network::IpAddressFamily,
    ) -> wasmtime_wasi::p2::SocketResult<Resource<wasmtime_wasi::p2::UdpSocket>> {
        Err(sync::sockets::network::ErrorCode::AccessDenied.into())
    }
}

struct IoData;
impl HasData for IoData {
    type Data<'a> = &'a mut ResourceTable;
}

/// `wasi:io` over the instance's resource table, polling each operation once.
struct NonBlocking<'a>(&'a mut ResourceTable);
struct NonBlockingData;
impl HasData for NonBlockingData {
    type Data<'a> = NonBlocking<'a>;
}

impl sync::io::poll::Host for NonBlocking<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        poll_once(async_io::poll::Host::poll(self.0, pollables)).unwrap_or_else(|| Err(would_block("wasi:io/poll.poll with nothing ready")))
    }
}

impl sync::io::poll::HostPollable for NonBlocking<'_> {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        // `ready` itself polls once; it never waits.
        poll_once(async_io::poll::HostPollable::ready(self.0, pollable)).unwrap_or(Ok(false))
    }
    fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        poll_once(async_io::poll::HostPollable::block(self.0, pollable))
            .unwrap_or_else(|| Err(would_block("a pollable that is not ready (pollable.block)")))
    }
    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        async_io::poll::HostPollable::drop(self.0, pollable)
    }
}

fn stream_would_block(what: &'static str) -> StreamError {
    StreamError::Trap(would_block(what))
}

impl sync::io::streams::Host for NonBlocking<'_> {
    fn convert_stream_error(&mut self, err: StreamError) -> wasmtime::Result<sync::io::streams::StreamError> {
        Ok(match async_io::streams::Host::convert_stream_error(self.0, err)? {
            async_io::streams::StreamError::LastOperationFailed(e) => sync::io::streams::StreamError::LastOperationFailed(e),
            async_io::streams::StreamError::Closed => sync::io::streams::StreamError::Closed,
        })
    }
}

impl sync::io::streams::HostOutputStream for NonBlocking<'_> {
    fn drop(&mut self, stream: Resource<DynOutputStream>) -> wasmtime::Result<()> {
        use async_io::streams::HostOutputStream as Out;
        // Dropping cancels pending work: our streams have none. One that had would be dropped uncancelled.
        poll_once(Out::drop(self.0, stream)).unwrap_or(Ok(()))
    }
    fn check_write(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<u64> {
        async_io::streams::HostOutputStream::check_write(self.0, stream)
    }
    fn write(&mut self, stream: Resource<DynOutputStream>, bytes: Vec<u8>) -> StreamResult<()> {
        async_io::streams::HostOutputStream::write(self.0, stream, bytes)
    }
    fn blocking_write_and_flush(&mut self, stream: Resource<DynOutputStream>, bytes: Vec<u8>) -> StreamResult<()> {
        use async_io::streams::HostOutputStream as Out;
        poll_once(Out::blocking_write_and_flush(self.0, stream, bytes)).unwrap_or_else(|| Err(stream_would_block("a full output stream")))
    }
    fn blocking_write_zeroes_and_flush(&mut self, stream: Resource<DynOutputStream>, len: u64) -> StreamResult<()> {
        use async_io::streams::HostOutputStream as Out;
        poll_once(Out::blocking_write_zeroes_and_flush(self.0, stream, len))
            .unwrap_or_else(|| Err(stream_would_block("a full output stream")))
    }
    fn subscribe(&mut self, stream: Resource<DynOutputStream>) -> wasmtime::Result<Resource<DynPollable>> {
        async_io::streams::HostOutputStream::subscribe(self.0, stream)
    }
    fn write_zeroes(&mut self, stream: Resource<DynOutputStream>, len: u64) -> StreamResult<()> {
        async_io::streams::HostOutputStream::write_zeroes(self.0, stream, len)
    }
    fn flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        async_io::streams::HostOutputStream::flush(self.0, stream)
    }
    fn blocking_flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        use async_io::streams::HostOutputStream as Out;
        poll_once(Out::blocking_flush(self.0, stream)).unwrap_or_else(|| Err(stream_would_block("an output stream's flush")))
    }
    fn splice(&mut self, dst: Resource<DynOutputStream>, src: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        async_io::streams::HostOutputStream::splice(self.0, dst, src, len)
    }
    fn blocking_splice(&mut self, dst: Resource<DynOutputStream>, src: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        use async_io::streams::HostOutputStream as Out;
        poll_once(Out::blocking_splice(self.0, dst, src, len)).unwrap_or_else(|| Err(stream_would_block("a stream splice")))
    }
}

impl sync::io::streams::HostInputStream for NonBlocking<'_> {
    fn drop(&mut self, stream: Resource<DynInputStream>) -> wasmtime::Result<()> {
        use async_io::streams::HostInputStream as In;
        poll_once(In::drop(self.0, stream)).unwrap_or(Ok(()))
    }
    fn read(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        async_io::streams::HostInputStream::read(self.0, stream, len)
    }
    fn blocking_read(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        use async_io::streams::HostInputStream as In;
        poll_once(In::blocking_read(self.0, stream, len)).unwrap_or_else(|| Err(stream_would_block("an input stream with nothing to read")))
    }
    fn skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        async_io::streams::HostInputStream::skip(self.0, stream, len)
    }
    fn blocking_skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        use async_io::streams::HostInputStream as In;
        poll_once(In::blocking_skip(self.0, stream, len)).unwrap_or_else(|| Err(stream_would_block("an input stream with nothing to skip")))
    }
    fn subscribe(&mut self, stream: Resource<DynInputStream>) -> wasmtime::Result<Resource<DynPollable>> {
        async_io::streams::HostInputStream::subscribe(self.0, stream)
    }
}

/// `wasi:clocks/monotonic-clock` on the room's game clock, with pollables that wait on it.
struct GameTime<'a> {
    table: &'a mut ResourceTable,
    clock: Arc<GameClock>,
}
struct GameTimeData;
impl HasData for GameTimeData {
    type Data<'a> = GameTime<'a>;
}

fn game_ns(clock: &GameClock) -> u64 {
    clock.now_ms().saturating_mul(1_000_000)
}

impl clocks::monotonic_clock::Host for GameTime<'_> {
    fn now(&mut self) -> wasmtime::Result<u64> {
        Ok(game_ns(&self.clock))
    }
    fn resolution(&mut self) -> wasmtime::Result<u64> {
        Ok(1_000_000)
    }
    fn subscribe_instant(&mut self, when: u64) -> wasmtime::Result<Resource<DynPollable>> {
        let due = self.table.push(GameDeadline { due_ns: when, clock: self.clock.clone() })?;
        wasmtime_wasi::p2::subscribe(self.table, due)
    }
    fn subscribe_duration(&mut self, duration: u64) -> wasmtime::Result<Resource<DynPollable>> {
        let when = game_ns(&self.clock).saturating_add(duration);
        self.subscribe_instant(when)
    }
}

/// Ready once the game clock reaches `due_ns`.
struct GameDeadline {
    due_ns: u64,
    clock: Arc<GameClock>,
}

#[wasmtime_wasi::async_trait]
impl wasmtime_wasi::p2::Pollable for GameDeadline {
    async fn ready(&mut self) {
        if game_ns(&self.clock) < self.due_ns {
            std::future::pending::<()>().await;
        }
    }
}

/// Log lines a room's plugin may write (through `log`, stdout or stderr), as a token bucket on wall
/// time shared by every instance the room has. Lines past it are dropped and counted, and the count is
/// logged with the next line that passes.
#[derive(Debug)]
pub struct LogBudget {
    limiter: governor::DefaultDirectRateLimiter,
    dropped: AtomicU64,
    /// Lines dropped since the room opened.
    pub dropped_total: AtomicU64,
}

impl LogBudget {
    /// `per_sec` lines a second, bursts of `burst`.
    pub fn new(per_sec: u32, burst: u32) -> Self {
        use std::num::NonZeroU32;
        let per_sec = NonZeroU32::new(per_sec.max(1)).expect("at least 1");
        let burst = NonZeroU32::new(burst.max(1)).expect("at least 1");
        LogBudget {
            limiter: governor::RateLimiter::direct(governor::Quota::per_second(per_sec).allow_burst(burst)),
            dropped: AtomicU64::new(0),
            dropped_total: AtomicU64::new(0),
        }
    }

    /// Whether one more line of `plugin` in `room` may be logged now; when lines were dropped before it,
    /// logs how many first. Every plugin log line (the `log` import, stdout, stderr, the host's warnings
    /// about the plugin) goes through here.
    pub fn admit_line(&self, plugin: &str, room: &str, tick: u64) -> bool {
        let Some(dropped) = self.admit() else { return false };
        if dropped > 0 {
            tracing::warn!(target: "warden::plugin", plugin, room, tick, dropped, "the plugin wrote more log lines than its room may; {dropped} were dropped");
        }
        true
    }

    /// Whether one more line may be written now: `Some(n)` if it may, `n` being the lines dropped since
    /// the last one that passed; `None` if it is dropped.
    pub fn admit(&self) -> Option<u64> {
        match self.limiter.check() {
            Ok(()) => Some(self.dropped.swap(0, Ordering::Relaxed)),
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                self.dropped_total.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

/// Which standard stream a [`GuestOutput`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StdStream {
    /// stdout (logged at info).
    Stdout,
    /// stderr (logged at warn).
    Stderr,
}

/// Where a guest's stdout or stderr goes: complete lines to the log; for stderr, a bounded tail kept for
/// crash reports (a panic message written by the default hook).
#[derive(Clone)]
pub struct GuestOutput(Arc<Mutex<OutputState>>, Arc<std::sync::atomic::AtomicBool>);

struct OutputState {
    stream: StdStream,
    plugin: Arc<str>,
    room: Arc<str>,
    clock: Arc<GameClock>,
    budget: Arc<LogBudget>,
    max_line: usize,
    /// The line being written.
    line: Vec<u8>,
    /// Whether the current line was cut at `max_line` (the rest of it is skipped).
    cut: bool,
    /// The last bytes written, at most `TAIL_BYTES`.
    tail: Vec<u8>,
}

/// Bytes of each stream kept for a crash report (enough for a panic message and its location).
const TAIL_BYTES: usize = 16 << 10;

impl GuestOutput {
    /// A stream of `plugin` in `room`, with lines of at most `max_line` bytes.
    pub fn new(
        stream: StdStream,
        plugin: Arc<str>,
        room: Arc<str>,
        clock: Arc<GameClock>,
        budget: Arc<LogBudget>,
        max_line: usize,
    ) -> Self {
        let partial = Arc::new(std::sync::atomic::AtomicBool::new(false));
        GuestOutput(
            Arc::new(Mutex::new(OutputState {
                stream,
                plugin,
                room,
                clock,
                budget,
                max_line: max_line.max(1),
                line: Vec::new(),
                cut: false,
                tail: Vec::new(),
            })),
            partial,
        )
    }

    /// The last bytes written (bounded).
    pub fn tail(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap().tail).into_owned()
    }

    /// Logs a partial line (the call ended without its newline). Called after every call: without a
    /// partial line it costs one atomic load, no lock.
    pub fn flush_line(&self) {
        if self.1.swap(false, std::sync::atomic::Ordering::Relaxed) {
            self.0.lock().unwrap().emit();
        }
    }

    fn write(&self, bytes: &[u8]) {
        let mut state = self.0.lock().unwrap();
        state.write(bytes);
        self.1.store(!state.line.is_empty(), std::sync::atomic::Ordering::Relaxed);
    }
}

impl OutputState {
    fn write(&mut self, mut bytes: &[u8]) {
        let keep = if self.stream == StdStream::Stderr { bytes.len().min(TAIL_BYTES) } else { 0 };
        self.tail.extend_from_slice(&bytes[bytes.len() - keep..]);
        if self.tail.len() > TAIL_BYTES {
            self.tail.drain(..self.tail.len() - TAIL_BYTES);
        }
        while !bytes.is_empty() {
            let (chunk, newline) = match bytes.iter().position(|&b| b == b'\n') {
                Some(at) => (&bytes[..at], true),
                None => (bytes, false),
            };
            if !self.cut {
                let room = self.max_line - self.line.len();
                self.line.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if chunk.len() > room {
                    self.cut = true;
                    self.emit();
                }
            }
            if newline {
                if self.cut {
                    self.cut = false;
                } else {
                    self.emit();
                }
                bytes = &bytes[chunk.len() + 1..];
            } else {
                bytes = &[];
            }
        }
    }

    /// Logs the current line, if any, within the room's budget.
    fn emit(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let line = String::from_utf8_lossy(&self.line).into_owned();
        self.line.clear();
        let (plugin, room, tick) = (&*self.plugin, &*self.room, self.clock.tick());
        if !self.budget.admit_line(plugin, room, tick) {
            return;
        }
        let cut = if self.cut { " [line cut at limits.log_line_bytes]" } else { "" };
        match self.stream {
            StdStream::Stdout => tracing::info!(target: "warden::plugin", plugin, room, tick, stream = "stdout", "{line}{cut}"),
            StdStream::Stderr => tracing::warn!(target: "warden::plugin", plugin, room, tick, stream = "stderr", "{line}{cut}"),
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn wasmtime_wasi::p2::OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        // WASIp3 streams are not linked; nothing calls this.
        Box::new(tokio::io::sink())
    }
}

/// Bytes a guest may write in one go: a permit as large as the biggest write the standard library makes.
const WRITE_PERMIT: usize = 64 << 10;

impl wasmtime_wasi::p2::OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        GuestOutput::write(self, &bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl wasmtime_wasi::p2::Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(max_line: usize) -> GuestOutput {
        GuestOutput::new(StdStream::Stderr, "p".into(), "r".into(), Arc::default(), Arc::new(LogBudget::new(1000, 1000)), max_line)
    }

    #[test]
    fn poll_once_completes_what_is_ready_and_refuses_what_would_wait() {
        assert_eq!(poll_once(async { 7 }), Some(7));
        assert_eq!(poll_once(std::future::pending::<()>()), None);
    }

    #[test]
    fn lines_are_cut_at_the_limit_and_the_tail_is_bounded() {
        let out = output(8);
        out.write(b"0123456789abc\nnext");
        let state = out.0.lock().unwrap();
        assert_eq!(state.line, b"next", "the cut line was emitted, its rest skipped, the next one begun");
        assert!(!state.cut);
        drop(state);
        let big = vec![b'y'; TAIL_BYTES * 2];
        out.write(&big);
        assert_eq!(out.tail().len(), TAIL_BYTES);
    }

    #[test]
    fn the_log_budget_drops_lines_past_its_burst_and_counts_them() {
        let budget = LogBudget::new(1, 3);
        let admitted = (0..10).filter(|_| budget.admit().is_some()).count();
        // A burst of 3, then one a second: a stalled test thread may see one or two more, never all ten.
        assert!((3..10).contains(&admitted), "{admitted}");
        assert_eq!(budget.dropped_total.load(Ordering::Relaxed), 10 - admitted as u64);
    }
}
