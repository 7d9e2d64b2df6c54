//! `warden crashes`: the crash reports in the crash directory, newest first.

use crate::commands::config_args::ConfigArgs;
use anyhow::Result;

/// Arguments of `warden crashes`.
#[derive(clap::Args, Debug)]
pub struct CrashesArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// How many reports, newest first.
    #[arg(long, short = 'n', default_value_t = 20)]
    limit: usize,
    /// Print each whole report as JSON (with the backtrace and the input).
    #[arg(long)]
    json: bool,
    /// Only the report of this incident (the id a player was shown in their error).
    #[arg(long, value_name = "ID")]
    incident: Option<String>,
}

/// Runs `warden crashes`.
pub fn run(args: CrashesArgs) -> Result<()> {
    let config = args.config.load(Vec::new())?;
    let dir = config.crash_dir();
    let reports = crate::health::crash::list(&dir)?;
    if reports.is_empty() {
        println!("no crash reports in {}", dir.display());
        return Ok(());
    }
    let wanted = |r: &crate::health::crash::CrashReport| args.incident.as_ref().is_none_or(|id| &r.id == id);
    let shown: Vec<_> = reports.iter().rev().filter(|(_, r)| wanted(r)).take(args.limit).collect();
    if let (Some(id), true) = (&args.incident, shown.is_empty()) {
        anyhow::bail!(
            "no crash report of incident {id} in {} (the directory keeps the newest {} bytes)",
            dir.display(),
            config.crashes.max_bytes
        );
    }
    for (path, r) in shown {
        if args.json {
            println!("{}", serde_json::to_string(r)?);
        } else {
            let frame = r.backtrace.first().map(String::as_str).unwrap_or("(no backtrace)");
            let input = r.input.as_ref().map(|i| i.to_string()).unwrap_or_else(|| "-".into());
            println!(
                "{}  incident {}  {} {} room {} tick {}  {} {} -> {}  input {}  player {}  checkpoint #{} (tick {})\n    {}\n    {}",
                crate::commands::audit::utc(r.at_ms),
                if r.id.is_empty() { "-" } else { &r.id },
                r.plugin,
                r.version,
                r.room,
                r.tick,
                r.export,
                r.kind,
                r.outcome,
                input,
                r.player.as_deref().unwrap_or("-"),
                r.checkpoint.id,
                r.checkpoint.tick,
                frame,
                path.display()
            );
        }
    }
    Ok(())
}
