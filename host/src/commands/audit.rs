//! `warden audit`: the newest entries of the audit log (deploys, rejections, rollbacks, restarts).

use crate::commands::config_args::ConfigArgs;
use crate::storage::Store;
use anyhow::Result;

/// Arguments of `warden audit`.
#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// How many entries, newest first.
    #[arg(long, short = 'n', default_value_t = 20)]
    limit: i64,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `warden audit` against the configured store (safe while the server runs).
pub fn run(args: AuditArgs) -> Result<()> {
    let config = args.config.load(Vec::new())?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let entries = runtime.block_on(async { Store::open(&config.storage_url()).await?.audit_log(args.limit).await })?;
    for e in entries {
        if args.json {
            println!("{}", serde_json::to_string(&e)?);
        } else {
            let when = chrono_like(e.at_ms);
            let what = format!("{} {}", e.plugin.as_deref().unwrap_or("-"), e.version.as_deref().unwrap_or("-"));
            println!("#{:<5} {when}  {:<8} {:<9} {:<22} {}", e.id, e.actor, e.action, what, e.detail);
        }
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS` UTC from unix milliseconds.
pub fn utc(ms: i64) -> String {
    chrono_like(ms)
}

/// `YYYY-MM-DD HH:MM:SS` UTC from unix milliseconds (civil-from-days, no time-zone database needed).
fn chrono_like(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_print_as_utc() {
        assert_eq!(super::chrono_like(0), "1970-01-01 00:00:00");
        assert_eq!(super::chrono_like(1_795_000_000_000), "2026-11-18 11:06:40");
        assert_eq!(super::chrono_like(951_782_400_000), "2000-02-29 00:00:00");
    }
}
