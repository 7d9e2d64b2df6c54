//! `warden status`, `rollback`, `promote` and `pause`: the operator's controls of a running server,
//! through its admin endpoint (see [`crate::admin`]).

use crate::admin::{Client, PauseRequest, RollbackRequest};
use crate::commands::config_args::ConfigArgs;
use crate::deploy::Status;
use anyhow::Result;

/// Where the server's admin endpoint is.
#[derive(clap::Args, Debug)]
pub struct AdminArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The admin endpoint [default: admin.addr of the configuration].
    #[arg(long, value_name = "ADDR")]
    admin: Option<std::net::SocketAddr>,
    /// The admin token [default: admin.token, or the server's <data_dir>/admin.token file].
    #[arg(long, env = "WARDEN_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl AdminArgs {
    /// The configuration these arguments name.
    pub(crate) fn config(&self) -> Result<crate::config::Config> {
        self.config.load(Vec::new())
    }

    /// The client these arguments name.
    pub(crate) fn client(&self) -> Result<Client> {
        let config = self.config()?;
        let mut client = match &self.token {
            Some(t) => Client::new(config.admin.addr, t.clone()),
            None => Client::for_config(&config)?,
        };
        if let Some(addr) = self.admin {
            client = Client::new(addr, client.token().to_string());
        }
        Ok(client)
    }
}

/// Arguments of `warden status`.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `warden rollback`.
#[derive(clap::Args, Debug)]
pub struct RollbackArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// The plugin.
    plugin: String,
    /// The version to go back to [default: the previous stable version].
    #[arg(long, value_name = "VERSION")]
    to: Option<String>,
    /// Allow going back to a version other than the previous stable one.
    #[arg(long)]
    force: bool,
}

/// Arguments of `warden promote`.
#[derive(clap::Args, Debug)]
pub struct PromoteArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// The plugin.
    plugin: String,
}

/// Arguments of `warden pause`.
#[derive(clap::Args, Debug)]
pub struct PauseArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// The plugin.
    plugin: String,
    /// Resume a paused rollout instead.
    #[arg(long)]
    resume: bool,
}

pub(crate) fn block_on<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(f)
}

/// `warden status`.
pub fn status(args: StatusArgs) -> Result<()> {
    let client = args.admin.client()?;
    let status = block_on(async { client.status().await })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", render(&status));
    }
    Ok(())
}

/// The status as the table `warden status` prints.
pub fn render(status: &Status) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for p in &status.plugins {
        let _ = writeln!(out, "{}", p.name);
        if !p.switches.is_empty() {
            let all: Vec<String> = p
                .switches
                .iter()
                .map(|s| {
                    let state = if s.on { "on" } else { "off" };
                    if s.on == s.default {
                        format!("{} {state}", s.switch)
                    } else {
                        format!("{} {state} (default {})", s.switch, if s.default { "on" } else { "off" })
                    }
                })
                .collect();
            let _ = writeln!(out, "  switches: {}", all.join(", "));
        }
        let _ = writeln!(
            out,
            "  {:<10} {:<8} {:<10} {:>5} {:>8} {:>7} {:>6} {:>9} {:>9}",
            "VERSION", "STATE", "PHASE", "ROOMS", "CALLS", "ERR%", "TRAPS", "P99", "TOTAL"
        );
        for v in &p.versions {
            let phase = match (v.phase, v.paused) {
                (Some(ph), true) => format!("{}*", serde_json::to_value(ph).unwrap().as_str().unwrap_or("")),
                (Some(ph), false) => serde_json::to_value(ph).unwrap().as_str().unwrap_or("").to_string(),
                (None, _) => "-".into(),
            };
            let p99 = v.p99_us.map_or("-".to_string(), |us| format!("{us}µs"));
            let _ = writeln!(
                out,
                "  {:<10} {:<8} {:<10} {:>5} {:>8} {:>6.1}% {:>6} {:>9} {:>9}",
                v.version,
                v.state,
                phase,
                v.rooms,
                v.window.calls,
                100.0 * v.error_rate,
                v.window.traps + v.window.deadlines,
                p99,
                v.total.calls
            );
        }
    }
    let _ = writeln!(out, "(window figures over the health policy's window; * = rollout paused)");
    if let Some(fleet) = &status.fleet {
        let _ = writeln!(
            out,
            "fleet: answered by host {}; rollouts run by host {}; rooms and window figures summed across the live hosts",
            fleet.this_host,
            fleet.leader.as_deref().unwrap_or("(none yet)")
        );
        let _ = writeln!(out, "  {:<24} {:<8} {:>6}  READY", "HOST", "STATE", "ROOMS");
        for h in &fleet.hosts {
            let state = if h.draining && h.live { "draining" } else { super::fleet::state_of(h) };
            let _ = writeln!(out, "  {:<24} {:<8} {:>6}  {}", h.id, state, h.load, super::fleet::ready_on(&fleet.versions, &h.id));
        }
    }
    if let Some(log) = &status.log {
        let _ = writeln!(out, "{}", crate::commands::steer::render_log(log));
    }
    if !status.rollbacks.is_empty() {
        let _ = writeln!(out, "last rollbacks:");
        for r in &status.rollbacks {
            let _ = writeln!(
                out,
                "  #{} {} {} {} by {}: {}",
                r.id,
                r.plugin.as_deref().unwrap_or("-"),
                r.version.as_deref().unwrap_or("-"),
                crate::commands::audit::utc(r.at_ms),
                r.actor,
                r.detail
            );
        }
    }
    out
}

/// `warden rollback`.
pub fn rollback(args: RollbackArgs) -> Result<()> {
    let client = args.admin.client()?;
    let outcome =
        block_on(async { client.action(&args.plugin, "rollback", &RollbackRequest { to: args.to.clone(), force: args.force }).await })?;
    println!("{}", outcome.message);
    Ok(())
}

/// `warden promote`.
pub fn promote(args: PromoteArgs) -> Result<()> {
    let client = args.admin.client()?;
    let outcome = block_on(async { client.action(&args.plugin, "promote", &()).await })?;
    println!("{}", outcome.message);
    Ok(())
}

/// `warden pause`.
pub fn pause(args: PauseArgs) -> Result<()> {
    let client = args.admin.client()?;
    let outcome = block_on(async { client.action(&args.plugin, "pause", &PauseRequest { resume: args.resume }).await })?;
    println!("{}", outcome.message);
    Ok(())
}
