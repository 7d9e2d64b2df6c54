//! `warden saves`: operators' view of player saves.

use crate::commands::config_args::ConfigArgs;
use crate::runtime::SavePriority;
use crate::storage::Store;
use crate::storage::queue::{QueueConfig, SaveQueue};
use anyhow::{Result, bail};
use std::io::Write;
use std::time::Duration;

/// Arguments of `warden saves`.
#[derive(clap::Args, Debug)]
pub struct SavesArgs {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(subcommand)]
    command: SavesCommand,
}

#[derive(clap::Subcommand, Debug)]
enum SavesCommand {
    /// Show a player's save: size, revision, when it was written, and its content as JSON when it is
    /// MessagePack.
    Show {
        /// Game (plugin) name.
        #[arg(long)]
        game: String,
        /// Player id.
        #[arg(long)]
        player: String,
    },
    /// Test helper: write saves for `players` players through the save queue as fast as it goes, and print
    /// `ack <player> <round>` once each is durable. The crash-safety test SIGKILLs it.
    #[command(hide = true)]
    Stress {
        /// Players to write for.
        #[arg(long, default_value_t = 20)]
        players: u64,
        /// First round number (values keep growing across runs).
        #[arg(long, default_value_t = 1)]
        start_round: u64,
    },
}

/// Runs `warden saves`.
pub fn run(args: SavesArgs) -> Result<()> {
    let config = args.config.load(Vec::new())?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let store = Store::open(&config.storage_url()).await?;
        match args.command {
            SavesCommand::Show { game, player } => show(&store, &game, &player).await,
            SavesCommand::Stress { players, start_round } => stress(store, players, start_round).await,
        }
    })
}

async fn show(store: &Store, game: &str, player: &str) -> Result<()> {
    let Some(save) = store.load_save(game, player).await? else {
        bail!("{player} has no save in {game}");
    };
    println!("game        {game}");
    println!("player      {player}");
    println!("revision    {}", save.revision);
    println!("size        {} bytes{}", save.data.len(), if save.compressed { " (stored compressed)" } else { "" });
    println!("updated at  {} (unix ms)", save.updated_at_ms);
    match rmp_serde::from_slice::<serde_json::Value>(&save.data) {
        Ok(value) => println!("content     {}", serde_json::to_string_pretty(&value)?),
        Err(_) => println!("content     {} bytes, not MessagePack", save.data.len()),
    }
    Ok(())
}

async fn stress(store: Store, players: u64, start_round: u64) -> Result<()> {
    let (queue, _writer) = SaveQueue::start(store, QueueConfig { flush_interval: Duration::from_millis(20), ..QueueConfig::default() });
    let (acks, mut printed) = tokio::sync::mpsc::unbounded_channel::<(u64, u64)>();
    tokio::spawn(async move {
        while let Some((player, round)) = printed.recv().await {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "ack p{player} {round}");
            let _ = out.flush();
        }
    });
    for round in start_round.. {
        for player in 0..players {
            let data = rmp_serde::to_vec(&round)?;
            let priority = if (round + player) % 10 == 0 { SavePriority::Critical } else { SavePriority::Normal };
            let ticket = queue.submit("stress", &format!("p{player}"), data, priority);
            let (queue, acks) = (queue.clone(), acks.clone());
            tokio::spawn(async move {
                if queue.durable(&ticket).await.is_ok() {
                    let _ = acks.send((player, round));
                }
            });
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}
