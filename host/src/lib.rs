//! Warden: a game-server host that runs gameplay logic as WebAssembly components and replaces them
//! while players stay connected.
//!
//! This crate is the host library behind the `warden` binary. Its concerns live in one folder each:
//! - [`runtime`]: the shared wasmtime [`Engine`](wasmtime::Engine) with its limits, the on-disk compile
//!   cache, loading and checking a plugin ([`runtime::Runtime::load`] gives a [`runtime::Plugin`]), and
//!   [`runtime::PluginInstance`], one typed call per export of the `game` world that tells a gameplay
//!   error apart from a trap and from a deadline hit.
//! - [`room`]: rooms as tokio tasks, each owning its plugin instance and fixed-step game clock.
//! - [`net`]: the envelope codec, tokens, sessions, and the WebSocket and TCP listeners.
//! - [`server`]: a running server ([`server::Server`]); [`config`]: `warden.toml`.
//! - [`deploy`]: loading plugins from the plugin directory, rollout and automatic rollback.
//! - [`fleet`]: several hosts on one PostgreSQL: leases.
//! - [`health`]: per-version health windows and the policy that marks a version bad.
//! - [`admin`]: the operator's endpoint on localhost (status, rollback, promote, pause).
//! - [`commands`]: one file per CLI subcommand.
//!
//! The contract plugins implement is the WIT package `warden:plugin` in `wit/`; plugin authors use the
//! `warden-sdk` crate.

/// The host's allocator, for the server and for every test and benchmark that links this crate (so that
/// they measure what runs). mimalloc rather than glibc's malloc: a room allocates its frames and batches
/// on one thread and the connections' writers (or, in a durable room, the store's writer) free them on
/// another, and in a profile of the durable tick loop glibc's own functions (`_int_malloc`, `_int_free`,
/// `malloc_consolidate`, `unlink_chunk`) made up 30% of the samples the durable side took beyond the
/// memory side's. Measured against glibc in alternating runs: README, "Dependencies and why".
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod admin;
pub mod commands;
pub mod config;
pub mod deploy;
pub mod fleet;
pub mod health;
pub mod logs;
pub mod net;
pub mod room;
pub mod rules;
pub mod runtime;
pub mod server;
pub mod storage;
