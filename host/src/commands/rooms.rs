//! `warden rooms`, `warden room` and `warden replay`: the open rooms of a running server, one room in
//! full or dumped to a file, and a dump re-run offline against a plugin file.

use crate::admin::rooms::RoomDetail;
use crate::commands::operate::AdminArgs;
use crate::room::RoomSummary;
use crate::room::dumpfile::{self, DumpFile};
use anyhow::{Context as _, Result, bail};
use std::path::PathBuf;

/// What `warden rooms` sorts by.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortBy {
    /// Game, then room id.
    Room,
    /// Players.
    Players,
    /// Time open.
    Age,
    /// Ticks run.
    Ticks,
    /// p99 tick duration.
    TickP99,
    /// Late ticks.
    Late,
    /// Inputs waiting.
    Inbox,
    /// Timers pending.
    Timers,
    /// Journal bytes.
    Journal,
    /// Instance memory.
    Memory,
    /// Checkpoint size.
    Checkpoint,
}

/// Arguments of `warden rooms`.
#[derive(clap::Args, Debug)]
pub struct RoomsArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// Only this game's rooms.
    #[arg(long)]
    game: Option<String>,
    /// Only rooms with at least one player.
    #[arg(long)]
    playing: bool,
    /// Sort by this column, largest first (`room` sorts by name).
    #[arg(long, value_enum, default_value = "room")]
    sort: SortBy,
    /// Show at most this many rooms.
    #[arg(long)]
    limit: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `warden room`.
#[derive(clap::Args, Debug)]
pub struct RoomArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// The game.
    game: String,
    /// The room id.
    room: String,
    /// Write the room's checkpoint and journal to FILE (JSON; `warden replay FILE` re-runs it).
    #[arg(long, value_name = "FILE")]
    dump: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `warden replay`.
#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// A dump written by `warden room GAME ROOM --dump FILE`.
    file: PathBuf,
    /// The plugin file of the version the room ran (its name and version must match the dump's).
    #[arg(long, value_name = "WASM")]
    plugin: PathBuf,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// `warden rooms`.
pub fn list(args: RoomsArgs) -> Result<()> {
    let client = args.admin.client()?;
    let mut rooms = runtime()?.block_on(client.rooms())?;
    rooms.retain(|r| args.game.as_ref().is_none_or(|g| *g == r.game) && (!args.playing || r.usage.players > 0));
    sort(&mut rooms, args.sort, crate::storage::now_ms() as u64);
    if let Some(limit) = args.limit {
        rooms.truncate(limit);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rooms)?);
    } else {
        print!("{}", render_list(&rooms, crate::storage::now_ms() as u64));
    }
    Ok(())
}

/// Sorts `rooms` by `by`, largest first (by name for [`SortBy::Room`]).
pub fn sort(rooms: &mut [RoomSummary], by: SortBy, now_ms: u64) {
    let key = |r: &RoomSummary| -> u64 {
        let u = &r.usage;
        match by {
            SortBy::Room => 0,
            SortBy::Players => u.players,
            SortBy::Age => now_ms.saturating_sub(r.opened_ms),
            SortBy::Ticks => u.ticks,
            SortBy::TickP99 => u.tick_p99_us,
            SortBy::Late => u.late_ticks,
            SortBy::Inbox => u.inbox,
            SortBy::Timers => u.timers,
            SortBy::Journal => u.journal_bytes,
            SortBy::Memory => u.linear_memory_bytes,
            SortBy::Checkpoint => u.state_bytes,
        }
    };
    rooms.sort_by(|a, b| key(b).cmp(&key(a)).then_with(|| (&a.game, &a.room).cmp(&(&b.game, &b.room))));
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 10 << 20 => format!("{} MiB", n >> 20),
        n if n >= 10 << 10 => format!("{} KiB", n >> 10),
        n => format!("{n} B"),
    }
}

fn age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// The table `warden rooms` prints.
pub fn render_list(rooms: &[RoomSummary], now_ms: u64) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:<16} {:<9} {:>7} {:>7} {:>8} {:>9} {:>5} {:>5} {:>6} {:>15} {:>9} {:>16}",
        "GAME", "ROOM", "VERSION", "PLAYERS", "AGE", "TICKS", "TICK p99", "LATE", "INBOX", "TIMERS", "JOURNAL", "MEMORY", "CHECKPOINT"
    );
    for r in rooms {
        let u = &r.usage;
        let hz_age = u.tick.saturating_sub(u.checkpoint_tick);
        let _ = writeln!(
            out,
            "{:<10} {:<16} {:<9} {:>7} {:>7} {:>8} {:>6} us {:>5} {:>5} {:>6} {:>15} {:>9} {:>16}",
            r.game,
            r.room,
            r.version,
            u.players,
            age(now_ms.saturating_sub(r.opened_ms)),
            u.ticks,
            u.tick_p99_us,
            u.late_ticks,
            u.inbox,
            u.timers,
            format!("{} / {}", u.journal_entries, bytes(u.journal_bytes)),
            bytes(u.linear_memory_bytes),
            format!("{} / {}t ago", bytes(u.state_bytes), hz_age),
        );
    }
    let _ = writeln!(out, "{} room(s)", rooms.len());
    out
}

/// `warden room`.
pub fn show(args: RoomArgs) -> Result<()> {
    let client = args.admin.client()?;
    let rt = runtime()?;
    if let Some(path) = &args.dump {
        let file = rt.block_on(client.room_dump(&args.game, &args.room))?;
        std::fs::write(path, serde_json::to_vec_pretty(&file)?).with_context(|| format!("failed to write {}", path.display()))?;
        println!(
            "wrote {}: {} {} room {} at tick {}, checkpoint {} (tick {}) and {} journal entries; re-run it with `warden replay {} --plugin {}-{}.wasm`",
            path.display(),
            file.game,
            file.version,
            file.room,
            file.tick,
            file.checkpoint.id,
            file.checkpoint.tick,
            file.journal.len(),
            path.display(),
            file.game,
            file.version
        );
        return Ok(());
    }
    let detail = rt.block_on(client.room(&args.game, &args.room))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&detail)?);
    } else {
        print!("{}", render_detail(&detail));
    }
    Ok(())
}

/// What `warden room` prints.
pub fn render_detail(d: &RoomDetail) -> String {
    use std::fmt::Write as _;
    let s = &d.summary;
    let u = &s.usage;
    let mut out = String::new();
    let _ = writeln!(out, "{} room {}: version {}, seed {}, tick {}", s.game, s.room, s.version, s.seed, u.tick);
    let _ = writeln!(out, "players ({}): {}", d.players.len(), d.players.join(", "));
    let _ = writeln!(
        out,
        "ticks: {} run, {} late, p99 {} us; inbox {}; instance memory {}; host holds {}",
        u.ticks,
        u.late_ticks,
        u.tick_p99_us,
        u.inbox,
        bytes(u.linear_memory_bytes),
        bytes(u.host_bytes)
    );
    let c = &d.checkpoint;
    let _ =
        writeln!(out, "checkpoint #{}: made by {} after tick {} ({} ticks ago), {}", c.id, c.version, c.tick, c.age_ticks, bytes(c.bytes));
    let j = &d.journal;
    let _ = writeln!(
        out,
        "journal: {} entries, {}: {} joins, {} leaves, {} messages, {} timers, {} ticks, {} saves read",
        j.entries,
        bytes(j.bytes),
        j.joins,
        j.leaves,
        j.messages,
        j.timers,
        j.ticks,
        j.saves_read
    );
    let n = &d.counts;
    let _ = writeln!(out, "calls since it opened: {} ({} err, {} traps, {} deadline hits)", n.calls, n.errors, n.traps, n.deadlines);
    let _ = writeln!(out, "timers pending ({}):", d.timers.len());
    for t in d.timers.iter().take(20) {
        let _ = writeln!(out, "  due at {} ms: {}", t.due_ms, t.tag);
    }
    if d.timers.len() > 20 {
        let _ = writeln!(out, "  ... and {} more", d.timers.len() - 20);
    }
    let _ = writeln!(out, "recent errors ({}):", d.recent_errors.len());
    for e in &d.recent_errors {
        let _ = writeln!(out, "  tick {} {} {}: {}", e.tick, e.export, e.outcome, e.message);
    }
    out
}

/// `warden replay`.
pub fn replay(args: ReplayArgs) -> Result<()> {
    let json = std::fs::read(&args.file).with_context(|| format!("failed to read {}", args.file.display()))?;
    let file = DumpFile::parse(&json).with_context(|| args.file.display().to_string())?;
    let wasm = std::fs::read(&args.plugin).with_context(|| format!("failed to read {}", args.plugin.display()))?;
    let rt = crate::runtime::Runtime::new(crate::runtime::Limits::default(), None)?;
    let plugin = rt.load(&wasm).map_err(|e| anyhow::anyhow!("{}: {e}", args.plugin.display()))?;
    let replay = file.replay(&plugin)?;
    let got = dumpfile::sha256(&replay.snapshot);
    println!(
        "replayed {} {} room {}: checkpoint {} (tick {}), {} calls, {} skipped for trapping; snapshot {} bytes, sha256 {}",
        file.game,
        file.version,
        file.room,
        file.checkpoint.id,
        file.checkpoint.tick,
        replay.calls,
        replay.skipped.len(),
        replay.snapshot.len(),
        got
    );
    match &file.snapshot_sha256 {
        Some(live) if *live == got => println!("identical to the live room's snapshot"),
        Some(live) => bail!(
            "the replay differs from the live room's snapshot (sha256 {live}): the plugin is not deterministic, or not the file the room ran"
        ),
        None => println!("the dump has no live snapshot to compare with"),
    }
    Ok(())
}
