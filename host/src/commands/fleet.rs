//! `warden fleet`: the hosts of the fleet on the configured PostgreSQL, as its hosts table has them.

use crate::commands::config_args::ConfigArgs;
use crate::storage::{Store, redact};
use anyhow::{Context as _, Result, bail};

/// Arguments of `warden fleet`.
#[derive(clap::Args, Debug)]
pub struct FleetArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Print JSON (one array of hosts) instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `warden fleet`.
pub fn run(args: FleetArgs) -> Result<()> {
    let config = args.config.load(Vec::new())?;
    let url = config.storage_url();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let hosts = runtime.block_on(async {
        let Store::Postgres(store) = Store::open(&url).await.with_context(|| format!("cannot open the store {}", redact(&url)))? else {
            bail!(
                "the store {} is not PostgreSQL: a fleet's hosts share one PostgreSQL (set storage.url = \"postgres://USER@HOST:PORT/DATABASE\")",
                redact(&url)
            );
        };
        store.hosts().await
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&hosts)?);
        return Ok(());
    }
    if hosts.is_empty() {
        println!("no host has joined the fleet on {} (a host joins with fleet.enabled = true)", redact(&url));
        return Ok(());
    }
    println!("{:<24} {:>11} {:<8} {:>12} {:>6}  ADDRESS", "HOST", "INCARNATION", "STATE", "LEASE LEFT", "ROOMS");
    for h in hosts {
        let state = if h.live { "live" } else { "expired" };
        let left = format!("{:.1} s", h.lease_left_ms as f64 / 1000.0);
        println!("{:<24} {:>11} {:<8} {:>12} {:>6}  {}", h.id, h.incarnation, state, left, h.load, h.addresses);
    }
    Ok(())
}
