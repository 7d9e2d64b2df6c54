//! Several hosts serving one game on one PostgreSQL: membership by leases ([`lease`]), and a host that
//! serves rooms only while it holds its lease ([`member`]). PostgreSQL is the one source of truth; there
//! is no consensus of our own (see `docs/fleet.md`).

pub mod adopt;
pub mod lease;
pub mod member;

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[fleet]` in `warden.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetConfig {
    /// Join the fleet: keep a lease in PostgreSQL's hosts table (`storage.url` must be PostgreSQL) and
    /// serve rooms only while it is held.
    pub enabled: bool,
    /// This host's id in the fleet, the same across restarts (empty: the machine's host name).
    pub host_id: String,
    /// Where players reach this host, as other hosts will send them there (empty: the WebSocket
    /// listener's address, `ws://ADDR/ws`).
    pub address: String,
    /// How often the lease is renewed, in milliseconds.
    pub heartbeat_ms: u64,
    /// How long a renewal lasts, by the database's clock, in milliseconds.
    pub lease_ms: u64,
    /// How much earlier than the lease's end the host stops serving, in milliseconds.
    pub lease_margin_ms: u64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        let times = lease::LeaseTimes::default();
        FleetConfig {
            enabled: false,
            host_id: String::new(),
            address: String::new(),
            heartbeat_ms: times.heartbeat.as_millis() as u64,
            lease_ms: times.lease.as_millis() as u64,
            lease_margin_ms: times.margin.as_millis() as u64,
        }
    }
}

impl FleetConfig {
    /// The lease's times.
    pub fn times(&self) -> lease::LeaseTimes {
        lease::LeaseTimes {
            heartbeat: Duration::from_millis(self.heartbeat_ms),
            lease: Duration::from_millis(self.lease_ms),
            margin: Duration::from_millis(self.lease_margin_ms),
        }
    }

    /// Checks the section against the store it would run on.
    pub fn validate(&self, storage_url: &str) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        if !(storage_url.starts_with("postgres://") || storage_url.starts_with("postgresql://")) {
            return Err(format!(
                "fleet.enabled needs storage.url = \"postgres://USER@HOST:PORT/DATABASE\" (the fleet's hosts share one PostgreSQL), not {}",
                crate::storage::redact(storage_url)
            ));
        }
        if !self.host_id.is_empty() && !crate::room::valid_room_id(&self.host_id) {
            return Err(format!(
                "fleet.host_id {:?} must be 1 to 64 letters, digits or -_.: (it names the host in the hosts table)",
                self.host_id
            ));
        }
        self.times().check()
    }

    /// `host_id`, or the machine's host name.
    pub fn host_id(&self) -> Result<String, String> {
        if !self.host_id.is_empty() {
            return Ok(self.host_id.clone());
        }
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|n| n.trim().to_string()).unwrap_or_default();
        match crate::room::valid_room_id(&name) {
            true => Ok(name),
            false => Err(format!("no fleet.host_id, and the host name {name:?} cannot stand for it: set fleet.host_id in warden.toml")),
        }
    }
}
