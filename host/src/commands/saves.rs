//! `warden saves`: operators' view of player saves.

use crate::commands::config_args::ConfigArgs;
use crate::runtime::SavePriority;
use crate::storage::Store;
use crate::storage::queue::{QueueConfig, SaveQueue};
use anyhow::{Context as _, Result, bail};
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
    /// Export saves as JSON lines ({"game", "player", "revision", "updated_at_ms", "data_base64"}).
    Export {
        /// Only this game [default: every game].
        #[arg(long)]
        game: Option<String>,
        /// Output file [default: stdout].
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Import saves from an export. Each imported save becomes the player's newest, with its revision
    /// one above what the store had (revisions never go down).
    Import {
        /// The JSON lines file written by `warden saves export`.
        file: std::path::PathBuf,
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
            SavesCommand::Export { game, out } => export(&store, game.as_deref(), out).await,
            SavesCommand::Import { file } => import(&store, &file).await,
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

#[derive(serde::Serialize, serde::Deserialize)]
struct ExportLine {
    game: String,
    player: String,
    revision: i64,
    updated_at_ms: i64,
    data_base64: String,
}

async fn export(store: &Store, game: Option<&str>, out: Option<std::path::PathBuf>) -> Result<()> {
    use base64::Engine as _;
    let mut sink: Box<dyn Write> = match &out {
        Some(path) => {
            Box::new(std::io::BufWriter::new(std::fs::File::create(path).with_context(|| format!("failed to create {}", path.display()))?))
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let saves = store.all_saves(game).await?;
    for (game, player, save) in &saves {
        let line = ExportLine {
            game: game.clone(),
            player: player.clone(),
            revision: save.revision,
            updated_at_ms: save.updated_at_ms,
            data_base64: base64::engine::general_purpose::STANDARD.encode(&save.data),
        };
        writeln!(sink, "{}", serde_json::to_string(&line)?)?;
    }
    sink.flush()?;
    eprintln!("exported {} saves", saves.len());
    Ok(())
}

async fn import(store: &Store, file: &std::path::Path) -> Result<()> {
    use base64::Engine as _;
    let text = std::fs::read_to_string(file).with_context(|| format!("failed to read {}", file.display()))?;
    let mut batch = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let line: ExportLine = serde_json::from_str(line).with_context(|| format!("{}:{}: not an export line", file.display(), n + 1))?;
        let data = base64::engine::general_purpose::STANDARD
            .decode(&line.data_base64)
            .with_context(|| format!("{}:{}: data_base64 is not base64", file.display(), n + 1))?;
        batch.push(crate::storage::SaveWrite { game: line.game, player: line.player, data });
    }
    // One transaction: an import either happens whole or not at all.
    store.write_saves(&batch).await?;
    eprintln!("imported {} saves", batch.len());
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
