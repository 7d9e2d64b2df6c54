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
