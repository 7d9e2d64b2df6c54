//! The `warden:plugin` host imports, each bounded: what a plugin hands the host stays in host memory
//! (queued sends, timers, saves, metrics, log lines) until the room takes it, and the linear-memory cap
//! does not bound that. Every import checks its limit (`[limits]`) and a call that crosses one traps
//! with [`LimitExceeded`], which names the limit and the setting that raises it.

use crate::runtime::bindings::warden::plugin::{clock, messaging, random, saves, telemetry, types};
use crate::runtime::host_state::{Kick, MetricSum, Outgoing, TimerRequest};
use crate::runtime::{HostState, LogLevel, Recipient, SavePriority};
use std::sync::atomic::Ordering;

/// A plugin call crossed one of the host's limits on what a plugin may make it hold.
#[derive(Debug, thiserror::Error)]
#[error("{what}, more than {setting} ({limit}) allows")]
pub struct LimitExceeded {
    /// What the plugin did.
    pub what: String,
    /// The `[limits]` key.
    pub setting: &'static str,
    /// Its value.
    pub limit: u64,
}

/// A plugin loaded or stored a save for a player whose save the host has not read.
#[derive(Debug, thiserror::Error)]
#[error(
    "the plugin asked for the save of player {player:?}, which the host has not read: a plugin may load and store saves only for players who joined one of its rooms (their saves are read before they join)"
)]
pub struct SaveNotLoaded {
    /// The player.
    pub player: String,
}

type Result<T> = wasmtime::Result<T>;

fn exceeded(what: String, setting: &'static str, limit: usize) -> wasmtime::Error {
    wasmtime::Error::new(LimitExceeded { what, setting, limit: limit as u64 })
}

impl HostState {
    /// Traps unless `name` (a `kind` the plugin handed the host) fits `limits.max_name_bytes`.
    fn check_name(&self, kind: &str, name: &str) -> Result<()> {
        let max = self.limits.max_name_bytes;
        if name.len() > max {
            return Err(exceeded(format!("the plugin passed a {kind} of {} bytes", name.len()), "limits.max_name_bytes", max));
        }
        Ok(())
    }

    fn warn(&self, message: std::fmt::Arguments<'_>) {
        let (plugin, room, tick) = (&*self.plugin, &self.env.room, self.env.clock.tick());
        if self.env.log_budget.admit_line(plugin, room, tick) {
            tracing::warn!(target: "warden::plugin", plugin, room, tick, "{message}");
        }
    }
}

impl types::Host for HostState {}

impl messaging::Host for HostState {
    fn send(&mut self, to: Recipient, payload: Vec<u8>) -> Result<()> {
        let (bytes, cap) = (payload.len(), self.limits.max_send_bytes);
        if bytes > cap {
            // No client could receive it: drop it here rather than disconnect every recipient.
            self.warn(format_args!(
                "the plugin sent a message of {bytes} bytes, more than limits.max_send_bytes ({cap}); no client could receive it, so it was not sent"
            ));
            return Ok(());
        }
        if let Recipient::Player(p) | Recipient::AllExcept(p) = &to {
            self.check_name("player id", p)?;
        }
        let queued = self.outbox_bytes + bytes;
        if queued > self.limits.max_queued_send_bytes {
            return Err(exceeded(
                format!("the plugin queued {queued} bytes of sends in one call"),
                "limits.max_queued_send_bytes",
                self.limits.max_queued_send_bytes,
            ));
        }
        self.outbox_bytes = queued;
        self.outbox.push(Outgoing { to, payload });
        Ok(())
    }

    fn kick(&mut self, player: String, reason: String) -> Result<()> {
        self.check_name("player id", &player)?;
        self.check_name("kick reason", &reason)?;
        self.kicks.push(Kick { player, reason });
        Ok(())
    }
}

impl clock::Host for HostState {
    fn now_ms(&mut self) -> Result<u64> {
        Ok(self.env.clock.now_ms())
    }

    fn tick(&mut self) -> Result<u64> {
        Ok(self.env.clock.tick())
    }

    fn set_timer(&mut self, after_ms: u64, tag: String) -> Result<()> {
        self.check_name("timer tag", &tag)?;
        let pending = self.env.timers_pending.load(Ordering::Relaxed) + self.timers.len();
        if pending >= self.limits.max_timers {
            return Err(exceeded(
                format!("the plugin set a timer with {pending} already pending in its room"),
                "limits.max_timers",
                self.limits.max_timers,
            ));
        }
        let due_ms = self.env.clock.now_ms().saturating_add(after_ms);
        self.timers.push(TimerRequest { due_ms, tag });
        Ok(())
    }
}

impl random::Host for HostState {
    fn next(&mut self) -> Result<u64> {
        Ok(self.env.rng.next())
    }
}

impl saves::Host for HostState {
    fn load_save(&mut self, player: String) -> Result<Option<Vec<u8>>> {
        self.check_name("player id", &player)?;
        // A replayed call reads what it read when it ran.
        if let Some(save) = self.replayed_read(&player) {
            return Ok(save);
        }
        // The plugin reads its own last write, even one not yet handed to the backend.
        let save = if let Some((_, data, _)) = self.pending_saves.iter().rev().find(|(p, _, _)| *p == player) {
            Some(data.clone())
        } else if !self.env.saves.is_loaded(&self.plugin, &player) {
            return Err(wasmtime::Error::new(SaveNotLoaded { player }));
        } else {
            self.env.saves.load(&self.plugin, &player)
        };
        self.record_read(&player, &save);
        Ok(save)
    }

    fn store_save(&mut self, player: String, data: Vec<u8>, priority: SavePriority) -> Result<()> {
        self.check_name("player id", &player)?;
        if !self.env.saves.is_loaded(&self.plugin, &player) {
            return Err(wasmtime::Error::new(SaveNotLoaded { player }));
        }
        if data.len() > self.limits.max_save_bytes {
            return Err(exceeded(
                format!("the plugin saved {} bytes for one player", data.len()),
                "limits.max_save_bytes",
                self.limits.max_save_bytes,
            ));
        }
        self.pending_saves.push((player, data, priority));
        Ok(())
    }
}

impl telemetry::Host for HostState {
    fn log(&mut self, level: LogLevel, mut message: String) -> Result<()> {
        let max = self.limits.log_line_bytes;
        if message.len() > max {
            message.truncate(message.floor_char_boundary(max));
            message.push_str(" [line cut at limits.log_line_bytes]");
        }
        if level == LogLevel::Error && message.starts_with("panicked at") {
            self.last_panic = Some(message.clone());
        }
        let (plugin, room, tick) = (&*self.plugin, &self.env.room, self.env.clock.tick());
        if !self.env.log_budget.admit_line(plugin, room, tick) {
            return Ok(());
        }
        match level {
            LogLevel::Trace => tracing::trace!(target: "warden::plugin", plugin, room, tick, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "warden::plugin", plugin, room, tick, "{message}"),
            LogLevel::Info => tracing::info!(target: "warden::plugin", plugin, room, tick, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "warden::plugin", plugin, room, tick, "{message}"),
            LogLevel::Error => tracing::error!(target: "warden::plugin", plugin, room, tick, "{message}"),
        }
        Ok(())
    }

    fn metric(&mut self, name: String, value: f64) -> Result<()> {
        self.check_name("metric name", &name)?;
        let names = self.metrics.len();
        match self.metrics.get_mut(&name) {
            Some(m) => *m = MetricSum { count: m.count + 1, sum: m.sum + value, last: value },
            None if names < self.limits.max_metric_names => {
                self.metrics.insert(name, MetricSum { count: 1, sum: value, last: value });
            }
            None => self.warn(format_args!(
                "the plugin reported metric {name:?}, one name more than limits.max_metric_names ({}); it was dropped",
                self.limits.max_metric_names
            )),
        }
        Ok(())
    }

    fn feature_enabled(&mut self, name: String) -> Result<bool> {
        self.check_name("feature name", &name)?;
        Ok(self.env.features.is_on(&name))
    }
}
