//! `warden fleet`: the hosts of the fleet on the configured PostgreSQL, as its hosts table has them; and
//! `warden drain HOST`: move a host's rooms to the other hosts, then stop it.

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
    let hosts = runtime.block_on(async { fleet_store(&url).await?.1.hosts().await })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&hosts)?);
        return Ok(());
    }
    if hosts.is_empty() {
        println!("no host has joined the fleet on {} (a host joins with fleet.enabled = true)", redact(&url));
        return Ok(());
    }
    println!("{:<24} {:>11} {:<8} {:>12} {:>6}  {:<28} GAMES", "HOST", "INCARNATION", "STATE", "LEASE LEFT", "ROOMS", "ADDRESS");
    for h in hosts {
        // Not live with lease left: its database session ended (the process died).
        let state = match (h.live, h.lease_left_ms > 0) {
            (true, _) => "live",
            (false, true) => "dead",
            (false, false) => "expired",
        };
        let left = format!("{:.1} s", h.lease_left_ms as f64 / 1000.0);
        println!("{:<24} {:>11} {:<8} {:>12} {:>6}  {:<28} {}", h.id, h.incarnation, state, left, h.load, h.addresses, h.games.join(","));
    }
    Ok(())
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
