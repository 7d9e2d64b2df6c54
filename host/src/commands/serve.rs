//! `warden serve`: run the game server until SIGINT or SIGTERM.

use crate::commands::config_args::{ConfigArgs, set_string};
use crate::server::Server;
use anyhow::{Context as _, Result};
use std::path::PathBuf;

/// Arguments of `warden serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Development mode: load unsigned plugins and admit anonymous guests (same as --set dev=true).
    #[arg(long)]
    dev: bool,
    /// Directory of plugin files (same as --set plugin_dir=DIR).
    #[arg(long, value_name = "DIR")]
    plugin_dir: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

/// Runs `warden serve`.
pub fn run(args: ServeArgs) -> Result<()> {
    let mut extra = Vec::new();
    if args.dev {
        extra.push("dev=true".to_string());
    }
    if let Some(dir) = &args.plugin_dir {
        extra.push(set_string("plugin_dir", &dir.to_string_lossy()));
    }
    let config = args.config.load(extra)?;
    if args.print_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("warden").build()?;
    runtime.block_on(async {
        // Caught from before the server starts: a SIGTERM sent as soon as the listening line is out (by a
        // supervisor, a script, a test) must shut the server down gracefully, not kill it (a loaded test
        // run once saw exit by signal 15 here, when the handlers were installed after that line).
        let mut signals = Signals::install()?;
        let server = Server::start(config).await?;
        // One line on stdout for scripts and tests to read the bound addresses from. Stdout may be a
        // pipe whose reader is gone (a `tee` killed by the same Ctrl-C): a write that fails is not a
        // reason to stop, let alone to panic, so its error is ignored.
        say(&format!(
            "warden listening ws=ws://{}/ws tcp={} admin={} games={}",
            server.ws_addr(),
            server.tcp_addr(),
            server.admin_addr(),
            server.games().join(",")
        ));
        tokio::select! {
            () = signals.wait() => tracing::info!("shutting down: finishing ticks and telling players"),
            () = server.drained() => tracing::info!("drained: leaving the fleet"),
        }
        server.shutdown().await;
        say("warden stopped");
        Ok(())
    })
}

/// A line on stdout, flushed; a closed stdout is ignored.
fn say(line: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// SIGTERM and SIGINT, caught from the moment they are installed.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("failed to listen for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("failed to listen for SIGINT")?,
        })
    }

    /// Resolves at the first SIGTERM or SIGINT since [`Signals::install`].
    async fn wait(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
