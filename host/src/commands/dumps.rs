//! `warden dumps`: the watchdog's dumps in `<data_dir>/dumps`, newest first.

use crate::commands::config_args::ConfigArgs;
use anyhow::Result;

/// Arguments of `warden dumps`.
#[derive(clap::Args, Debug)]
pub struct DumpsArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// How many dumps, newest first.
    #[arg(long, short = 'n', default_value_t = 20)]
    limit: usize,
    /// Print each whole dump as JSON (the room's listing row and the runtime figures).
    #[arg(long)]
    json: bool,
}

/// Runs `warden dumps`.
pub fn run(args: DumpsArgs) -> Result<()> {
    let config = args.config.load(Vec::new())?;
    let dir = config.dump_dir();
    let dumps = crate::admin::watchdog::list(&dir)?;
    if dumps.is_empty() {
        println!("no watchdog dumps in {}", dir.display());
        return Ok(());
    }
    for (path, d) in dumps.iter().rev().take(args.limit) {
        if args.json {
            println!("{}", serde_json::to_string(d)?);
        } else {
            let room = d.room.as_ref().map(|r| format!("{} {} room {}", r.game, r.version, r.room)).unwrap_or_else(|| "server".into());
            println!(
                "{}  {:<11} {}  value {} > threshold {}\n    {}",
                crate::commands::audit::utc(d.at_ms),
                d.condition.name(),
                room,
                d.value,
                d.threshold,
                path.display()
            );
        }
    }
    Ok(())
}
