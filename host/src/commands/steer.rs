//! `warden switch` and `warden log`: the operator steering a running server without a restart, through its admin
//! endpoint (see [`crate::admin`]).

use crate::admin::{LogRequest, SwitchRequest};
use crate::commands::operate::{AdminArgs, block_on};
use anyhow::{Result, bail};

/// On or off.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnOff {
    /// On.
    On,
    /// Off.
    Off,
}

/// Arguments of `warden switch`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  warden switch chat chat off      # mute chat in every room at its next tick\n  \
                        warden switch arena --joins off  # maintenance: refuse new joins, players in rooms stay")]
pub struct SwitchArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// The plugin (game).
    plugin: String,
    /// The plugin feature to switch (what its `feature-enabled` asks about).
    #[arg(requires = "state", conflicts_with = "joins")]
    feature: Option<String>,
    /// on or off.
    #[arg(value_enum)]
    state: Option<OnOff>,
    /// Open (on) or close (off) the game to new joins; players already in rooms stay.
    #[arg(long, value_enum, value_name = "on|off")]
    joins: Option<OnOff>,
}

/// `warden switch`.
pub fn switch(args: SwitchArgs) -> Result<()> {
    let req = match (&args.feature, args.state, args.joins) {
        (Some(feature), Some(state), None) => SwitchRequest { switch: format!("feature:{feature}"), on: state == OnOff::On },
        (None, None, Some(joins)) => SwitchRequest { switch: "joins".into(), on: joins == OnOff::On },
        _ => bail!("name a feature and on|off (warden switch PLUGIN FEATURE on|off), or --joins on|off"),
    };
    let client = args.admin.client()?;
    let outcome = block_on(async { client.action(&args.plugin, "switch", &req).await })?;
    println!("{}", outcome.message);
    Ok(())
}

/// Arguments of `warden log`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  warden log                               # the filter in force\n  \
                        warden log warden=debug --for 10m        # debug logs for ten minutes, then back\n  \
                        warden log warn,warden::room=trace       # one module in detail, until changed again")]
pub struct LogArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// The new filter: a level (error, warn, info, debug, trace) or target=level pairs, e.g.
    /// `warden=debug` or `warn,warden::room=trace`. Without it, prints the filter in force.
    filter: Option<String>,
    /// Go back to the filter it replaces after this long (e.g. 90s, 10m, 1h).
    #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration, requires = "filter")]
    lasting: Option<std::time::Duration>,
}

/// `warden log`.
pub fn log(args: LogArgs) -> Result<()> {
    let client = args.admin.client()?;
    match &args.filter {
        Some(filter) => {
            crate::logs::parse(filter)?;
            let req = LogRequest { filter: filter.clone(), for_ms: args.lasting.map(|d| d.as_millis() as u64) };
            println!("{}", block_on(async { client.set_log(&req).await })?.message);
        }
        None => {
            let status = block_on(async { client.log_status().await })?;
            println!("{}", render_log(&status));
        }
    }
    Ok(())
}

/// The log filter as `warden log` and `warden status` print it.
pub fn render_log(status: &crate::logs::LogStatus) -> String {
    match (&status.filter, &status.reverts) {
        (None, _) => "log filter: fixed (this server's logging was not set up by warden serve)".into(),
        (Some(f), None) => format!("log filter: {f}"),
        (Some(f), Some((at, to))) => format!("log filter: {f} (back to {to} at {})", crate::commands::audit::utc(*at)),
    }
}

/// Arguments of `warden alerts`.
#[derive(clap::Args, Debug)]
pub struct AlertsArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// Print JSON, one alert per line.
    #[arg(long)]
    json: bool,
}

/// `warden alerts`: the threshold rules' last firings, newest first.
pub fn alerts(args: AlertsArgs) -> Result<()> {
    let client = args.admin.client()?;
    let alerts = block_on(async { client.alerts().await })?;
    if args.json {
        for a in &alerts {
            println!("{}", serde_json::to_string(a)?);
        }
    } else if alerts.is_empty() {
        println!("no rule has fired since the server started");
    } else {
        for a in &alerts {
            println!("{}  {a}", crate::commands::audit::utc(a.at_ms));
        }
    }
    Ok(())
}

/// Arguments of `warden rules`.
#[derive(clap::Args, Debug)]
pub struct RulesArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// Replace the running server's rules with the `[[rules]]` of this TOML file (until its next
    /// restart, which reads warden.toml's).
    #[arg(long, value_name = "FILE")]
    set: Option<std::path::PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `warden rules`.
pub fn rules(args: RulesArgs) -> Result<()> {
    let client = args.admin.client()?;
    if let Some(file) = &args.set {
        #[derive(serde::Deserialize)]
        struct File {
            #[serde(default)]
            rules: Vec<crate::rules::Rule>,
        }
        let text = std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
        let parsed: File = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not a file of [[rules]]: {e}", file.display()))?;
        crate::rules::RuleSet::new(parsed.rules.clone()).map_err(|e| anyhow::anyhow!("{}: {e:#}", file.display()))?;
        println!("{}", block_on(async { client.set_rules(&parsed.rules).await })?.message);
        return Ok(());
    }
    let view = block_on(async { client.rules().await })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(());
    }
    if view.rules.is_empty() {
        println!("no threshold rules ([[rules]] in warden.toml, or warden rules --set FILE)");
    }
    for r in &view.rules {
        let fired: u64 = view.fired.iter().filter(|(name, _, _)| *name == r.name).map(|(_, _, n)| n).sum();
        let game = r.game.as_deref().unwrap_or("every game");
        println!(
            "{:<20} {} per {:?} over {} ms > {} -> {} ({game}; fired {fired} time(s))",
            r.name,
            r.figure,
            r.per,
            r.window_ms,
            r.limit,
            r.action.name()
        );
    }
    Ok(())
}
