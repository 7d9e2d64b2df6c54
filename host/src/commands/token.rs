//! `warden token --player ID`: mint a player token with the server's secret.

use crate::commands::config_args::ConfigArgs;
use crate::net::auth;
use anyhow::{Result, bail};

/// Arguments of `warden token`.
#[derive(clap::Args, Debug)]
pub struct TokenArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The player id the token proves (1 to 64 of ASCII letters, digits and -_.@:).
    #[arg(long)]
    player: String,
    /// Lifetime in seconds [default: auth.token_ttl_secs from the configuration].
    #[arg(long)]
    ttl_secs: Option<u64>,
}

/// Runs `warden token`: prints the token on stdout.
pub fn run(args: TokenArgs) -> Result<()> {
    let config = args.config.load(Vec::new())?;
    if !auth::valid_player_id(&args.player) {
        bail!("player id {:?} must be 1 to 64 of ASCII letters, digits and -_.@:", args.player);
    }
    let ttl = args.ttl_secs.unwrap_or(config.auth.token_ttl_secs);
    println!("{}", auth::mint(config.secret()?, &args.player, auth::unix_now() + ttl));
    Ok(())
}
