//! `warden bots`: a load generator. N players connect over WebSocket or TCP, join rooms of a few
//! players, and play `arena` (numbered moves, each answered by `moved`) or `chat` (numbered lines, each
//! coming back to its author) at a fixed rate for a duration. It reports sent, answered, errors, lost and
//! duplicated messages and round-trip percentiles, and exits non-zero if any message was lost or any
//! connection failed.

use crate::commands::config_args::ConfigArgs;
use crate::net::auth;
use crate::net::client::{self, Endpoint, Received};
use crate::net::envelope::{ClientEnvelope, Format, ServerEnvelope};
use anyhow::{Context as _, Result, bail};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Which game the bots play.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BotGame {
    /// Numbered moves; the server answers each with `moved`.
    Arena,
    /// Numbered chat lines; each comes back to its author (mind chat's rate limit: 5 lines per 5 s).
    Chat,
}

/// Arguments of `warden bots`.
#[derive(clap::Args, Debug)]
pub struct BotsArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// WebSocket URL of the server [default: ws://<net.ws_addr>/ws from the configuration]. Repeat it
    /// for the hosts of a fleet: bot i starts on URL i mod N, and with --reconnect moves on to the next.
    #[arg(long, conflicts_with = "tcp")]
    url: Vec<String>,
    /// Use TCP to this address instead of WebSocket.
    #[arg(long)]
    tcp: Option<SocketAddr>,
    /// Send JSON text frames instead of MessagePack binary frames (WebSocket only).
    #[arg(long)]
    json: bool,
    /// The game to play.
    #[arg(long, value_enum, default_value = "arena")]
    game: BotGame,
    /// Number of players.
    #[arg(long, short = 'n', default_value_t = 10)]
    players: usize,
    /// Players per room.
    #[arg(long, default_value_t = 4)]
    room_size: usize,
    /// Messages per second, per player.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// How long to play, in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Prefix of the room ids (rooms are <prefix>-0, <prefix>-1, ...).
    #[arg(long, default_value = "bots")]
    room_prefix: String,
    /// Print the report as JSON on stdout.
    #[arg(long = "report-json")]
    report_json: bool,
    /// When a bot's connection ends or its room moves (a host of a fleet died or stopped serving), connect
    /// again (to the next URL), join the room again and resend the moves not answered yet, for up to
    /// 60 s, instead of counting a failed connection.
    #[arg(long)]
    reconnect: bool,
    /// The other hosts' endpoints (the repeated --url after the first).
    #[arg(skip)]
    also: Vec<Endpoint>,
}

#[derive(Default)]
struct Counters {
    connected: AtomicU64,
    failed: AtomicU64,
    sent: AtomicU64,
    answered: AtomicU64,
    errors: AtomicU64,
    duplicated: AtomicU64,
    score_resets: AtomicU64,
    reconnects: AtomicU64,
    redirects: AtomicU64,
}

/// The outcome of a run.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Players asked for.
    pub players: usize,
    /// Players that connected and joined.
    pub connected: u64,
    /// Connections that failed to connect or closed unexpectedly.
    pub failed_connections: u64,
    /// Messages sent.
    pub sent: u64,
    /// Messages answered.
    pub answered: u64,
    /// `error` envelopes received.
    pub errors: u64,
    /// Sent messages never answered.
    pub lost: u64,
    /// Answers received more than once.
    pub duplicated: u64,
    /// Arena: answers whose score was below the player's score in an earlier answer (room state lost).
    pub score_resets: u64,
    /// Times a bot connected again after its connection ended or its room moved (--reconnect).
    pub reconnects: u64,
    /// `redirect`s followed to the host that runs the room.
    pub redirects: u64,
    /// Round trip, median, in milliseconds.
    pub rtt_p50_ms: f64,
    /// Round trip, 99th percentile, in milliseconds.
    pub rtt_p99_ms: f64,
    /// Round trip, worst, in milliseconds.
    pub rtt_max_ms: f64,
    /// Answers per second over the run.
    pub answers_per_sec: f64,
    /// Each player's moves sent (every one of them answered unless `lost` says otherwise), by player id.
    pub moves: std::collections::BTreeMap<String, u64>,
}

impl BotsArgs {
    /// Bots playing `game` against `endpoint`'s server: `players` in rooms of `room_size`, `rate`
    /// messages a second each for `duration` seconds (for tests and benchmarks that drive bots in-process).
    pub fn new(game: BotGame, players: usize, room_size: usize, rate: f64, duration: f64, room_prefix: &str) -> Self {
        BotsArgs {
            config: ConfigArgs::default(),
            url: Vec::new(),
            tcp: None,
            json: false,
            game,
            players,
            room_size,
            rate,
            duration,
            room_prefix: room_prefix.to_string(),
            report_json: false,
            reconnect: false,
            also: Vec::new(),
        }
    }

    /// The bots play a fleet: the hosts' `endpoints` besides the one [`drive`] is given; a bot whose
    /// connection ends or whose room moves connects again (to the next host), rejoins and resends what
    /// was not answered.
    pub fn fleet(mut self, endpoints: Vec<Endpoint>) -> Self {
        self.also = endpoints;
        self.reconnect = true;
        self
    }
}

/// Runs `warden bots`.
pub fn run(args: BotsArgs) -> Result<()> {
    let mut args = args;
    let config = args.config.load(Vec::new())?;
    let format = if args.json { Format::Json } else { Format::MsgPack };
    let endpoint = match (&args.tcp, args.url.first()) {
        (Some(addr), _) => Endpoint::Tcp(*addr),
        (None, Some(url)) => Endpoint::Ws(url.clone(), format),
        (None, None) => Endpoint::Ws(format!("ws://{}/ws", config.net.ws_addr), format),
    };
    args.also = args.url.iter().skip(1).map(|url| Endpoint::Ws(url.clone(), format)).collect();
    if args.players == 0 || args.room_size == 0 || args.rate <= 0.0 || args.duration <= 0.0 {
        bail!("--players, --room-size, --rate and --duration must be above 0");
    }
    let secret = config.auth.secret.clone().map(String::into_bytes);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = runtime.block_on(drive(&args, endpoint, secret))?;
    if args.report_json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&args, &report);
    }
    if report.lost > 0 || report.failed_connections > 0 || report.duplicated > 0 || report.score_resets > 0 {
        bail!(
            "{} lost, {} duplicated, {} failed connections, {} score resets (see the report above)",
            report.lost,
            report.duplicated,
            report.failed_connections,
            report.score_resets
        );
    }
    Ok(())
}

/// Runs the bots and gathers the report.
pub async fn drive(args: &BotsArgs, endpoint: Endpoint, secret: Option<Vec<u8>>) -> Result<Report> {
    drive_until(args, endpoint, secret, CancellationToken::new()).await
}

/// [`drive`], but the bots also stop sending (and then collect their last answers) once `stop` is
/// cancelled, before `--duration` is up.
pub async fn drive_until(args: &BotsArgs, endpoint: Endpoint, secret: Option<Vec<u8>>, stop: CancellationToken) -> Result<Report> {
    let counters = Arc::new(Counters::default());
    let histogram = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?));
    let progress = ProgressBar::new_spinner();
    progress.set_style(ProgressStyle::with_template("{spinner} {elapsed} {msg}")?);
    let start_at = Instant::now() + Duration::from_millis(200 + args.players as u64 / 2);
    let endpoints: Arc<[Endpoint]> = std::iter::once(endpoint).chain(args.also.iter().cloned()).collect();
    let moves: Arc<Mutex<std::collections::BTreeMap<String, u64>>> = Arc::default();
    let mut bots = Vec::with_capacity(args.players);
    for i in 0..args.players {
        let bot = Bot {
            index: i,
            endpoints: endpoints.clone(),
            reconnect: args.reconnect,
            moves: moves.clone(),
            token: secret.as_ref().map(|s| auth::mint(s, &format!("bot-{i}"), auth::unix_now() + 3600)),
            game: args.game,
            room: format!("{}-{}", args.room_prefix, i / args.room_size),
            period: Duration::from_secs_f64(1.0 / args.rate),
            duration: Duration::from_secs_f64(args.duration),
            start_at,
            counters: counters.clone(),
            histogram: histogram.clone(),
            stop: stop.clone(),
        };
        bots.push(tokio::spawn(bot.run()));
    }
    let began = Instant::now();
    let ticker = {
        let (counters, progress) = (counters.clone(), progress.clone());
        tokio::spawn(async move {
            loop {
                let c = &counters;
                progress.set_message(format!(
                    "connected {} failed {} sent {} answered {} errors {}",
                    c.connected.load(Ordering::Relaxed),
                    c.failed.load(Ordering::Relaxed),
                    c.sent.load(Ordering::Relaxed),
                    c.answered.load(Ordering::Relaxed),
                    c.errors.load(Ordering::Relaxed)
                ));
                progress.tick();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    for bot in bots {
        if let Err(e) = bot.await.context("a bot task panicked")? {
            tracing::warn!("{e:#}");
        }
    }
    ticker.abort();
    progress.finish_and_clear();
    let elapsed = began.elapsed().as_secs_f64();
    let c = &counters;
    let h = histogram.lock().unwrap();
    let ms = |us: u64| us as f64 / 1000.0;
    let (sent, answered) = (c.sent.load(Ordering::Relaxed), c.answered.load(Ordering::Relaxed));
    Ok(Report {
        players: args.players,
        connected: c.connected.load(Ordering::Relaxed),
        failed_connections: c.failed.load(Ordering::Relaxed),
        sent,
        answered,
        errors: c.errors.load(Ordering::Relaxed),
        lost: sent.saturating_sub(answered),
        duplicated: c.duplicated.load(Ordering::Relaxed),
        score_resets: c.score_resets.load(Ordering::Relaxed),
        reconnects: c.reconnects.load(Ordering::Relaxed),
        redirects: c.redirects.load(Ordering::Relaxed),
        rtt_p50_ms: ms(h.value_at_quantile(0.50)),
        rtt_p99_ms: ms(h.value_at_quantile(0.99)),
        rtt_max_ms: ms(h.max()),
        answers_per_sec: answered as f64 / elapsed,
        moves: std::mem::take(&mut *moves.lock().unwrap()),
    })
}

fn print_report(args: &BotsArgs, r: &Report) {
    println!("bots: {} players ({:?}) at {}/s for {} s", r.players, args.game, args.rate, args.duration);
    println!("  connected   {} ({} failed)", r.connected, r.failed_connections);
    println!("  sent        {}", r.sent);
    println!("  answered    {} ({:.0}/s)", r.answered, r.answers_per_sec);
    println!("  errors      {}", r.errors);
    println!("  lost        {}", r.lost);
    println!("  duplicated  {}", r.duplicated);
    println!("  score resets {}", r.score_resets);
    println!("  reconnects  {} ({} redirects followed)", r.reconnects, r.redirects);
    println!("  round trip  p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms", r.rtt_p50_ms, r.rtt_p99_ms, r.rtt_max_ms);
}

struct Bot {
    index: usize,
    endpoints: Arc<[Endpoint]>,
    reconnect: bool,
    moves: Arc<Mutex<std::collections::BTreeMap<String, u64>>>,
    token: Option<String>,
    game: BotGame,
    room: String,
    period: Duration,
    duration: Duration,
    start_at: Instant,
    counters: Arc<Counters>,
    histogram: Arc<Mutex<Histogram<u64>>>,
    stop: CancellationToken,
}

/// What a bot sends for message number `seq`.
fn payload(game: BotGame, index: usize, seq: u64) -> Vec<u8> {
    let value = match game {
        BotGame::Arena => {
            let dir = ["up", "right", "down", "left"][(seq as usize + index) % 4];
            serde_json::json!({"type": "move", "dir": dir, "seq": seq})
        }
        BotGame::Chat => serde_json::json!({"type": "say", "text": format!("bot-{index} #{seq}")}),
    };
    rmp_serde::to_vec_named(&value).expect("encodes")
}

/// The number of the message `data` answers, if it is an answer to this bot, and the score it reports
/// (arena).
fn answer_seq(game: BotGame, index: usize, player: &str, data: &[u8]) -> Option<(u64, Option<u64>)> {
    let value: serde_json::Value = rmp_serde::from_slice(data).ok()?;
    match game {
        BotGame::Arena => (value["type"] == "moved").then(|| Some((value["seq"].as_u64()?, value["score"].as_u64()))).flatten(),
        BotGame::Chat => {
            if value["type"] != "line" || value["from"] != player {
                return None;
            }
            Some((value["text"].as_str()?.strip_prefix(&format!("bot-{index} #"))?.parse().ok()?, None))
        }
    }
}

/// How long a bot with --reconnect keeps trying to get back into its room.
const RECONNECT_FOR: Duration = Duration::from_secs(60);

impl Bot {
    /// Connects (to endpoint `attempt` mod N, from its own), says hello and joins its room, following
    /// redirects.
    async fn join(&self, attempt: usize) -> Result<client::InRoom> {
        let endpoint = &self.endpoints[(self.index + attempt) % self.endpoints.len()];
        let joined = client::join_room(endpoint, self.token.clone(), self.game_name(), &self.room).await?;
        self.counters.redirects.fetch_add(u64::from(joined.redirects), Ordering::Relaxed);
        Ok(joined)
    }

    /// Into the room (again, after the connection ended or the room moved), trying each host in turn for
    /// up to [`RECONNECT_FOR`], with every move not answered yet sent again, in order.
    async fn rejoin(&self, attempt: &mut usize, sent_at: &[Instant], answered: &[bool]) -> Result<client::InRoom> {
        let deadline = Instant::now() + RECONNECT_FOR;
        let mut backoff = Duration::from_millis(20);
        let mut joined = loop {
            *attempt += 1;
            match self.join(*attempt).await {
                Ok(joined) => break joined,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(bot = self.index, "reconnect failed, trying the next host: {e:#}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                Err(e) => return Err(e.context(format!("bot {} could not get back into its room", self.index))),
            }
        };
        if !sent_at.is_empty() {
            self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        for seq in 1..=sent_at.len() as u64 {
            if !answered.get(seq as usize - 1).copied().unwrap_or(false) {
                joined.tx.send(&ClientEnvelope::Msg { data: payload(self.game, self.index, seq) }).await?;
            }
        }
        Ok(joined)
    }

    async fn run(self) -> Result<()> {
        let mut attempt = 0;
        let first = match self.reconnect {
            // A host of the fleet may not serve yet: try the others.
            true => self.rejoin(&mut attempt, &[], &[]).await,
            false => self.join(attempt).await,
        };
        let client::InRoom { mut tx, mut rx, player, .. } = match first {
            Ok(ok) => ok,
            Err(e) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                return Err(e.context(format!("bot {} failed to connect and join", self.index)));
            }
        };
        self.counters.connected.fetch_add(1, Ordering::Relaxed);
        // Spread the bots' sends over the period.
        let phase = self.period.mul_f64((self.index % 100) as f64 / 100.0);
        let (start, end) = (self.start_at + phase, self.start_at + phase + self.duration);
        let mut ticks = tokio::time::interval_at(start, self.period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // When each move was first sent (index: seq - 1), and whether it was answered.
        let mut sent_at: Vec<Instant> = Vec::new();
        let mut answered: Vec<bool> = Vec::new();
        let mut answered_count = 0u64;
        let mut best_score = 0u64;
        let mut local = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        // Once sending is over: how long to wait for the last answers.
        let mut grace_until: Option<Instant> = None;
        let grace = if self.reconnect { RECONNECT_FOR } else { Duration::from_secs(3) };
        loop {
            let now = Instant::now();
            if let Some(until) = grace_until
                && (answered_count >= sent_at.len() as u64 || now >= until)
            {
                break;
            }
            let wait = grace_until.map_or(Duration::from_millis(100), |until| until.saturating_duration_since(now));
            // What ended the connection, if something did.
            let lost: Option<String> = tokio::select! {
                at = ticks.tick(), if grace_until.is_none() => {
                    if at >= end || self.stop.is_cancelled() {
                        grace_until = Some(Instant::now() + grace);
                        continue;
                    }
                    let seq = sent_at.len() as u64 + 1;
                    sent_at.push(Instant::now());
                    self.counters.sent.fetch_add(1, Ordering::Relaxed);
                    match tx.send(&ClientEnvelope::Msg { data: payload(self.game, self.index, seq) }).await {
                        Ok(()) => None,
                        Err(e) => Some(format!("{e:#}")),
                    }
                }
                _ = self.stop.cancelled(), if grace_until.is_none() => {
                    grace_until = Some(Instant::now() + grace);
                    continue;
                }
                received = tokio::time::timeout(wait.max(Duration::from_millis(1)), rx.recv()) => match received {
                    Err(_) => None,
                    Ok(Err(e)) if self.reconnect => Some(format!("{e:#}")),
                    Ok(Err(e)) => {
                        self.counters.failed.fetch_add(1, Ordering::Relaxed);
                        return Err(e.context(format!("bot {} received a bad frame", self.index)));
                    }
                    Ok(Ok(Received::Closed(reason))) => Some(format!("the server closed the connection ({reason:?})")),
                    Ok(Ok(Received::Envelope(ServerEnvelope::Kicked { reason }))) if self.reconnect => Some(reason),
                    Ok(Ok(Received::Envelope(ServerEnvelope::Error { message, .. }))) => {
                        self.counters.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(bot = self.index, "error: {message}");
                        None
                    }
                    Ok(Ok(Received::Envelope(ServerEnvelope::Msg { data }))) => {
                        let Some((seq, score)) = answer_seq(self.game, self.index, &player, &data) else { continue };
                        if let Some(score) = score {
                            if score < best_score {
                                self.counters.score_resets.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(bot = self.index, score, best_score, "score went down: the room lost state");
                            }
                            best_score = best_score.max(score);
                        }
                        let Some(sent) = sent_at.get((seq as usize).wrapping_sub(1)).copied() else { continue };
                        let i = seq as usize - 1;
                        if answered.len() <= i {
                            answered.resize(i + 1, false);
                        }
                        if answered[i] {
                            self.counters.duplicated.fetch_add(1, Ordering::Relaxed);
                        } else {
                            answered[i] = true;
                            answered_count += 1;
                            self.counters.answered.fetch_add(1, Ordering::Relaxed);
                            local.saturating_record(sent.elapsed().as_micros() as u64);
                        }
                        None
                    }
                    Ok(Ok(Received::Envelope(_))) => None,
                },
            };
            if let Some(why) = lost {
                if !self.reconnect {
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    bail!("bot {}: {why}", self.index);
                }
                tracing::debug!(bot = self.index, "lost the room ({why}); joining again");
                tx.close().await;
                let joined = match self.rejoin(&mut attempt, &sent_at, &answered).await {
                    Ok(joined) => joined,
                    Err(e) => {
                        self.counters.failed.fetch_add(1, Ordering::Relaxed);
                        return Err(e);
                    }
                };
                (tx, rx) = (joined.tx, joined.rx);
            }
        }
        self.histogram.lock().unwrap().add(&local)?;
        self.moves.lock().unwrap().insert(player, sent_at.len() as u64);
        tx.close().await;
        Ok(())
    }

    fn game_name(&self) -> &'static str {
        match self.game {
            BotGame::Arena => "arena",
            BotGame::Chat => "chat",
        }
    }
}
