//! `warden store`: the store itself, whichever backend: `migrate` copies a single host's store into
//! another (SQLite into the PostgreSQL of a fleet).

use crate::storage::{Store, redact};
use anyhow::{Context as _, Result, bail};

/// Arguments of `warden store`.
#[derive(clap::Args, Debug)]
pub struct StoreArgs {
    #[command(subcommand)]
    command: StoreCommand,
}

#[derive(clap::Subcommand, Debug)]
enum StoreCommand {
    /// Copy everything a store holds (saves with their revisions, versions, floors, rollouts, switches,
    /// the audit log, room checkpoints and durable journals) into another, empty store, in one
    /// transaction. Stop the server that uses the source first.
    Migrate {
        /// The store to copy: sqlite://PATH or postgres://USER@HOST:PORT/DATABASE.
        #[arg(long)]
        from: String,
        /// The empty store to copy into (its schema is created).
        #[arg(long)]
        to: String,
    },
}

/// Runs `warden store`.
pub fn run(args: StoreArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        match args.command {
            StoreCommand::Migrate { from, to } => migrate(&from, &to).await,
        }
    })
}

async fn migrate(from: &str, to: &str) -> Result<()> {
    if from == to {
        bail!("--from and --to name the same store ({}); name another store to copy into", redact(to));
    }
    let source = Store::open(from).await.with_context(|| format!("cannot open the source store {}", redact(from)))?;
    let target = Store::open(to).await.with_context(|| format!("cannot open the target store {}", redact(to)))?;
    if !target.is_empty().await? {
        bail!(
            "the target store {} already holds data; migrate copies into an empty store only, so nothing was written (use a new database)",
            redact(to)
        );
    }
    let data = source.export().await.with_context(|| format!("cannot read the source store {}", redact(from)))?;
    target.import(&data).await.with_context(|| format!("cannot write the target store {} (nothing was written)", redact(to)))?;
    println!("copied {} ({}) into {} ({}):", redact(from), source.backend(), redact(to), target.backend());
    for (what, n) in data.counts() {
        println!("  {n:>8} {what}");
    }
    Ok(())
}
