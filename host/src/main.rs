//! The `warden` command: see `warden --help`.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use warden::commands;

/// Warden: a game-server host that runs gameplay as WebAssembly components and replaces them while
/// players stay connected.
#[derive(Parser)]
#[command(name = "warden", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what a plugin file is: its manifest, world, exports and imports, size, sha256 and compile
    /// time; or explain why it is not a valid Warden plugin (exit status 1).
    Inspect(commands::inspect::InspectArgs),
    /// Write a ready plugin project (Rust, Python or JavaScript): its build file, a hello game and a test
    /// of it that passes as written.
    New(commands::new::NewArgs),
    /// Re-version a built plugin without rebuilding it: append a manifest naming the new version (the
    /// code is untouched), write NAME-VERSION.wasm, then sign it with `warden sign`.
    #[command(disable_version_flag = true)]
    Stamp(commands::stamp::StampArgs),
    /// The edit-to-live loop for a plugin project (Rust, Python or JavaScript): build it, stamp a
    /// development version, check it, drop it into a running `warden serve --dev` server's plugin
    /// directory and follow it until every room runs it with its state carried over; then do the same on
    /// every save. One line per build error and per result, with the time from save to live.
    Dev(commands::dev::DevArgs),
    /// Run the game server: load the plugins, open the WebSocket and TCP listeners, run rooms until
    /// SIGINT or SIGTERM, then shut down gracefully.
    Serve(commands::serve::ServeArgs),
    /// Load generator: connect N players to a running server, play arena or chat at a fixed rate, and
    /// report sent, answered, errors, lost and round-trip percentiles; exits 1 if anything was lost or a
    /// connection failed.
    ///
    /// Player tokens: each bot (`bot-0`, `bot-1`, ...) gets a one-hour token minted with the server's
    /// `auth.secret`, read from the same configuration the server reads (`warden.toml`,
    /// `WARDEN_AUTH__SECRET`, or `--set auth.secret=...`). Without a secret the bots join as anonymous
    /// guests, which only a `--dev` server admits.
    Bots(commands::bots::BotsArgs),
    /// Player saves: show one (size, revision, time, content as JSON), export and import.
    Saves(commands::saves::SavesArgs),
    /// The store itself: `warden store migrate --from sqlite://... --to postgres://...` copies a single
    /// host's store (saves, registry, floors, audit, checkpoints) into an empty one, e.g. for a fleet.
    Store(commands::store::StoreArgs),
    /// The hosts of the fleet on the configured PostgreSQL: id, incarnation, whether the lease is live
    /// and how long it has left (by the database's clock), rooms, and the address players reach it at.
    Fleet(commands::fleet::FleetArgs),
    /// Drain a host of the fleet: it stops its rooms (their players are told they moved and rejoin on the
    /// other hosts, each room resuming at its last answered tick), then leaves the fleet and exits.
    /// Audited.
    Drain(commands::fleet::DrainArgs),
    /// Make a minisign key pair for signing plugins (NAME.key, NAME.pub) and print the warden.toml line
    /// that trusts it.
    Keygen(commands::sign::KeygenArgs),
    /// Sign a plugin: writes FILE.minisig, whose trusted comment binds the plugin's name and version
    /// (read from its embedded manifest).
    Sign(commands::sign::SignArgs),
    /// Check a plugin's signature, trusted comment and names as the server does (exit status 1 if it
    /// would be rejected).
    Verify(commands::sign::VerifyArgs),
    /// Deploy a signed plugin into a server's plugin directory: run the server's checks, then copy the
    /// signature and the file in with write-then-rename; exits 1 with the reason if it would be rejected.
    Push(commands::push::PushArgs),
    /// The audit log, newest first: every deploy, rejection (with its reason and fix), rollback and
    /// restart.
    Audit(commands::audit::AuditArgs),
    /// A running server's plugins: versions and their state, rollout phase, health figures over the
    /// policy window, rooms per version, and the last rollbacks (through the admin endpoint).
    Status(commands::operate::StatusArgs),
    /// Roll a plugin back on a running server: its serving version is marked bad and every room goes
    /// back to the previous stable version (another version needs --to and --force). Audited.
    Rollback(commands::operate::RollbackArgs),
    /// Move a plugin's rollout one phase on now: canary -> every room (probation) -> stable. Audited.
    Promote(commands::operate::PromoteArgs),
    /// Hold a plugin's rollout in its phase (automatic rollback stays on); --resume continues it.
    /// Audited.
    Pause(commands::operate::PauseArgs),
    /// Turn a plugin feature on or off in every room of a running server at its next tick, or close a
    /// game to new joins (--joins off) for maintenance. Stored (a restart keeps it) and audited.
    Switch(commands::steer::SwitchArgs),
    /// Show or change a running server's log filter (e.g. `warden=debug`), optionally for a while
    /// (--for 10m) after which it goes back by itself. Audited.
    Log(commands::steer::LogArgs),
    /// A running server's threshold rules and how often each fired; --set FILE replaces them.
    Rules(commands::steer::RulesArgs),
    /// The threshold rules' last firings on a running server, newest first.
    Alerts(commands::steer::AlertsArgs),
    /// A running server's open rooms: game, id, version, players, age, ticks, tick p99, late ticks,
    /// inbox, timers, journal, instance memory and checkpoint, sorted and filtered (through the admin
    /// endpoint).
    Rooms(commands::rooms::RoomsArgs),
    /// One room of a running server in full (players, timers, checkpoint, journal, recent errors), or
    /// with --dump FILE its checkpoint and journal written for `warden replay`.
    Room(commands::rooms::RoomArgs),
    /// Re-run a room dump offline against a plugin file and check that it ends on the live room's
    /// snapshot, byte for byte (exit status 1 if not).
    Replay(commands::rooms::ReplayArgs),
    /// The watchdog's dumps (a room or the runtime past a leak or anomaly threshold), newest first.
    Dumps(commands::dumps::DumpsArgs),
    /// The crash reports (one per trap: plugin, version, room, tick, input, wasm backtrace), newest
    /// first.
    Crashes(commands::crashes::CrashesArgs),
    /// Mint a player token signed with the server's secret (auth.secret / WARDEN_AUTH__SECRET).
    Token(commands::token::TokenArgs),
}

fn main() -> ExitCode {
    warden::logs::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(args) => commands::inspect::run(args),
        Command::New(args) => commands::new::run(args),
        Command::Dev(args) => commands::dev::run(args),
        Command::Stamp(args) => commands::stamp::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Token(args) => commands::token::run(args),
        Command::Keygen(args) => commands::sign::keygen(args),
        Command::Sign(args) => commands::sign::sign(args),
        Command::Verify(args) => commands::sign::verify(args),
        Command::Push(args) => commands::push::run(args),
        Command::Audit(args) => commands::audit::run(args),
        Command::Status(args) => commands::operate::status(args),
        Command::Rollback(args) => commands::operate::rollback(args),
        Command::Promote(args) => commands::operate::promote(args),
        Command::Pause(args) => commands::operate::pause(args),
        Command::Switch(args) => commands::steer::switch(args),
        Command::Log(args) => commands::steer::log(args),
        Command::Rules(args) => commands::steer::rules(args),
        Command::Alerts(args) => commands::steer::alerts(args),
        Command::Crashes(args) => commands::crashes::run(args),
        Command::Rooms(args) => commands::rooms::list(args),
        Command::Room(args) => commands::rooms::show(args),
        Command::Replay(args) => commands::rooms::replay(args),
        Command::Dumps(args) => commands::dumps::run(args),
        Command::Bots(args) => commands::bots::run(args),
        Command::Saves(args) => commands::saves::run(args),
        Command::Store(args) => commands::store::run(args),
        Command::Fleet(args) => commands::fleet::run(args),
        Command::Drain(args) => commands::fleet::run_drain(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
