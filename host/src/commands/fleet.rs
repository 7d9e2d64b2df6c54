//! `warden fleet`: the hosts of the fleet on the configured PostgreSQL, as its hosts table has them, with
//! the versions each has ready and the host running rollouts; and
//! `warden drain HOST`: move a host's rooms to the other hosts, then stop it.

use crate::commands::config_args::ConfigArgs;
use crate::storage::fleet_deploy::HostVersion;
use crate::storage::hosts::HostRecord;
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

/// The fleet's PostgreSQL, from `storage.url`.
async fn fleet_store(url: &str) -> Result<(Store, crate::storage::postgres::PgStore)> {
    let store = Store::open(url).await.with_context(|| format!("cannot open the store {}", redact(url)))?;
    let Store::Postgres(pg) = &store else {
        bail!(
            "the store {} is not PostgreSQL: a fleet's hosts share one PostgreSQL (set storage.url = \"postgres://USER@HOST:PORT/DATABASE\")",
            redact(url)
        );
    };
    let pg = pg.clone();
    Ok((store, pg))
}

/// Runs `warden fleet`.
pub fn run(args: FleetArgs) -> Result<()> {
    let config = args.config.load(Vec::new())?;
    let url = config.storage_url();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (hosts, versions, leader) = runtime.block_on(async {
        let pg = fleet_store(&url).await?.1;
        anyhow::Ok((pg.hosts().await?, pg.host_versions().await?, pg.leader("rollout").await?))
    })?;
    if args.json {
        let json = serde_json::json!({ "hosts": hosts, "versions": versions, "rollout_leader": leader });
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    if hosts.is_empty() {
        println!("no host has joined the fleet on {} (a host joins with fleet.enabled = true)", redact(&url));
        return Ok(());
    }
    println!("{:<24} {:>11} {:<8} {:>12} {:>6}  {:<28} READY", "HOST", "INCARNATION", "STATE", "LEASE LEFT", "ROOMS", "ADDRESS");
    for h in &hosts {
        let state = if h.draining && h.live { "draining" } else { state_of(h) };
        let left = format!("{:.1} s", h.lease_left_ms as f64 / 1000.0);
        println!(
            "{:<24} {:>11} {:<8} {:>12} {:>6}  {:<28} {}",
            h.id,
            h.incarnation,
            state,
            left,
            h.load,
            h.addresses,
            ready_on(&versions, &h.id)
        );
    }
    println!("rollouts run by host {} (the holder of the rollout lease)", leader.as_deref().unwrap_or("(none: no host is live)"));
    Ok(())
}

/// `live`, `dead` (its database session ended: the process died) or `expired` (its lease ran out).
pub fn state_of(h: &HostRecord) -> &'static str {
    match (h.live, h.lease_left_ms > 0) {
        (true, _) => "live",
        (false, true) => "dead",
        (false, false) => "expired",
    }
}

/// The versions host `host` has ready, by plugin (`arena 0.2.0 0.3.0; chat 1.0.0`), and those it could
/// not make ready (`!0.3.1`).
pub fn ready_on(versions: &[HostVersion], host: &str) -> String {
    let mut by_plugin: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for v in versions.iter().filter(|v| v.host == host) {
        let shown = if v.state == "ready" { v.version.clone() } else { format!("!{}", v.version) };
        by_plugin.entry(&v.plugin).or_default().push(shown);
    }
    let shown: Vec<String> = by_plugin.into_iter().map(|(p, vs)| format!("{p} {}", vs.join(" "))).collect();
    if shown.is_empty() { "-".into() } else { shown.join("; ") }
}

/// Arguments of `warden drain`.
#[derive(clap::Args, Debug)]
pub struct DrainArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The host to drain (its `fleet.host_id`, as `warden fleet` lists it).
    host: String,
    /// Return once the host is asked, without waiting for it to leave the fleet.
    #[arg(long)]
    no_wait: bool,
}

/// Runs `warden drain`: asks the host (through the hosts table, so from anywhere that reaches the
/// fleet's PostgreSQL) to stop its rooms and leave; its players are told their rooms moved and join them
/// again on the other hosts, where each resumes at its last answered tick. Audited; waits (up to 60 s)
/// until the host has left unless `--no-wait`.
pub fn run_drain(args: DrainArgs) -> Result<()> {
    let config = args.config.load(Vec::new())?;
    let url = config.storage_url();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let (store, pg) = fleet_store(&url).await?;
        let Some(incarnation) = pg.drain_host(&args.host).await? else {
            let live: Vec<String> = pg.hosts().await?.into_iter().filter(|h| h.live).map(|h| h.id).collect();
            bail!("host {:?} is not live in the fleet (live: {}); `warden fleet` lists the hosts", args.host, live.join(", "));
        };
        let detail = format!("host {} (incarnation {incarnation}): its rooms move to the other hosts, then it leaves the fleet", args.host);
        store.audit("operator", "drain", None, None, &detail).await?;
        println!("asked host {} (incarnation {incarnation}) to drain", args.host);
        if args.no_wait {
            return Ok(());
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let host = pg.hosts().await?.into_iter().find(|h| h.id == args.host);
            if host.as_ref().is_none_or(|h| !h.live || h.incarnation != incarnation) {
                println!("host {} left the fleet; its rooms are served by the other hosts", args.host);
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                bail!("host {} has not left the fleet within 60 s (is it stuck writing to the store? its log says)", args.host);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
}
