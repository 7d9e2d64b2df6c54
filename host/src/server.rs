//! A running server: plugins loaded, rooms ready, WebSocket and TCP listeners accepting.

use crate::config::Config;
use crate::deploy::Deployer;
use crate::net::limits::ConnectionCaps;
use crate::net::session::ServerCtx;
use crate::net::{tcp, ws};
use crate::room::Rooms;
use crate::runtime::{Runtime, SaveBackend};
use crate::storage::Store;
use crate::storage::queue::{QueueConfig, SaveQueue};
use anyhow::{Context as _, Result};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A started server.
pub struct Server {
    ctx: Arc<ServerCtx>,
    ws_addr: SocketAddr,
    tcp_addr: SocketAddr,
    admin_addr: SocketAddr,
    admin_token: String,
    crash_dir: std::path::PathBuf,
    dump_dir: std::path::PathBuf,
    watchdog_stats: Arc<crate::admin::watchdog::WatchdogStats>,
    listeners: Vec<JoinHandle<()>>,
    admin_task: JoinHandle<()>,
    watchdog: Option<JoinHandle<()>>,
    alerts: JoinHandle<()>,
    saves: SaveQueue,
    store: Store,
    deployer: Arc<Deployer>,
    deploy_stop: CancellationToken,
    deploy_task: JoinHandle<()>,
    /// The fleet lease and the task that serves rooms only while it is held (`[fleet]`).
    fleet: Option<(crate::fleet::lease::Lease, JoinHandle<()>)>,
    /// Cancelled once a fleet host asked to drain has stopped its rooms: it is to shut down.
    drained: CancellationToken,
    _runtime: Arc<Runtime>,
    /// Dropped last: the rooms running on it have ended by then.
    _game_threads: Option<crate::room::threads::GameThreads>,
}

impl Server {
    /// Loads the plugins, binds the listeners and starts accepting.
    pub async fn start(config: Config) -> Result<Server> {
        let store = Store::open(&config.storage_url()).await?;
        let (queue, _writer) = SaveQueue::start(
            store.clone(),
            QueueConfig {
                flush_interval: std::time::Duration::from_millis(config.storage.flush_interval_ms),
                max_batch: config.storage.max_batch,
                max_batch_bytes: config.storage.max_batch_bytes,
                high_water: config.storage.high_water,
                high_water_bytes: config.storage.high_water_bytes,
            },
        );
        let saves: Arc<dyn SaveBackend> = Arc::new(queue.clone());
        let runtime = Arc::new(Runtime::new(config.limits.clone(), Some(config.data_dir.join("cache")))?);
        let rooms = Rooms::new(HashMap::new(), config.room_config(), saves);
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = if config.rooms.threads == 0 { cores } else { config.rooms.threads };
        let game_threads = match config.rooms.game_threads {
            true => Some(crate::room::threads::GameThreads::start(threads, config.rooms.nice)?),
            false => None,
        };
        if let Some(game_threads) = &game_threads {
            rooms.run_on(game_threads.handle());
        }
        rooms.attach(store.clone(), config.crash_dir(), config.crashes.max_bytes);
        let deployer = Arc::new(Deployer::new(runtime.clone(), store.clone(), rooms.clone(), &config)?);
        if config.fleet.enabled
            && let Store::Postgres(pg) = &store
        {
            // One registry for the fleet: versions this host has no file of come from the fleet's artifacts.
            deployer.join_fleet(pg.clone(), config.fleet.host_id().map_err(anyhow::Error::msg)?);
        }
        deployer.boot().await?;
        if rooms.games().is_empty() {
            tracing::warn!("no plugin is serving from {}: joins are refused until one is deployed", config.plugin_dir.display());
        }
        let deploy_stop = CancellationToken::new();
        // Cancelled when a fleet host has drained (`warden drain`): it is to shut down.
        let drained = CancellationToken::new();
        let ws_listener =
            TcpListener::bind(config.net.ws_addr).await.with_context(|| format!("failed to listen on {}", config.net.ws_addr))?;
        let ws_addr = ws_listener.local_addr()?;
        let (fleet, seats) = match config.fleet.enabled {
            // In a fleet, rooms are served only under the lease; the open rooms resume once it is held.
            true => {
                let (lease, member, seats) = join_fleet(&config, &store, &rooms, ws_addr, (deploy_stop.clone(), drained.clone())).await?;
                // Follows the fleet's registry, and runs its rollouts while it holds the rollout lease.
                let watch = lease.watch();
                let incarnation = move || match &*watch.borrow() {
                    crate::fleet::lease::LeaseState::Serving { incarnation, .. } => Some(*incarnation),
                    _ => None,
                };
                let t = config.fleet.times();
                let times = crate::deploy::fleet::LeaderTimes { heartbeat: t.heartbeat, lease: t.lease, margin: t.margin };
                tokio::spawn(deployer.clone().follow_fleet(incarnation, times, deploy_stop.clone()));
                (Some((lease, member)), Some(seats))
            }
            false => {
                // Rooms that were open when this host stopped or crashed carry on where their last answered
                // tick left them (their players rejoin).
                let resumed = rooms.resume_open().await.context("failed to read which rooms were open")?;
                if resumed > 0 {
                    tracing::info!(rooms = resumed, "resuming the rooms that were open");
                }
                (None, None)
            }
        };
        let deploy_task = deployer.clone().spawn(deploy_stop.clone())?;
        rooms.rules().replace(crate::rules::RuleSet::new(config.rules.clone())?);
        let alerts = crate::admin::alerts::spawn(rooms.rules(), deployer.clone(), store.clone(), deploy_stop.clone());
        let ctx = Arc::new(ServerCtx::new(rooms.clone(), &config, queue.clone()));
        if let Some(seats) = seats {
            let _ = ctx.seats.set(seats);
        }
        let mut runtimes = vec![("main", tokio::runtime::Handle::current())];
        if let Some(game_threads) = &game_threads {
            runtimes.push(("game", game_threads.handle()));
        }
        let metrics = Arc::new(crate::admin::metrics::Sources::new(
            rooms,
            deployer.clone(),
            queue.clone(),
            ctx.stats.clone(),
            runtime.clone(),
            config.rooms.tick_hz,
            config.limits.max_instances,
            runtimes,
        ));
        let watchdog_stats = metrics.watchdog.clone();
        let watchdog = config.watchdog.enabled.then(|| {
            crate::admin::watchdog::Watchdog::new(
                metrics.clone(),
                config.watchdog.clone(),
                config.limits.memory_bytes as u64,
                std::time::Duration::from_millis(config.rooms.empty_grace_ms),
                config.dump_dir(),
                store.clone(),
            )
            .spawn(deploy_stop.clone())
        });
        let admin_token = crate::admin::token(&config.admin.token, &config.data_dir)?;
        let (admin_addr, admin_task) = crate::admin::serve(
            &config.admin,
            admin_token.clone(),
            deployer.clone(),
            metrics,
            crate::logs::LogControl::new(store.clone()),
            deploy_stop.clone(),
        )
        .await?;
        let caps = ConnectionCaps::new(config.net.max_connections, config.net.max_connections_per_ip);
        let tcp_listener =
            TcpListener::bind(config.net.tcp_addr).await.with_context(|| format!("failed to listen on {}", config.net.tcp_addr))?;
        let tcp_addr = tcp_listener.local_addr()?;
        let listeners = vec![
            tokio::spawn({
                let (ctx, caps) = (ctx.clone(), caps.clone());
                async move {
                    if let Err(e) = ws::serve(ws_listener, ctx, caps).await {
                        tracing::error!("the WebSocket listener failed: {e}");
                    }
                }
            }),
            tokio::spawn(tcp::serve(tcp_listener, ctx.clone(), caps)),
        ];
        Ok(Server {
            ctx,
            ws_addr,
            tcp_addr,
            admin_addr,
            admin_token,
            crash_dir: config.crash_dir(),
            dump_dir: config.dump_dir(),
            watchdog_stats,
            listeners,
            admin_task,
            watchdog,
            alerts,
            saves: queue,
            store,
            deployer,
            deploy_stop,
            deploy_task,
            fleet,
            drained,
            _runtime: runtime,
            _game_threads: game_threads,
        })
    }

    /// The WebSocket listener's address.
    pub fn ws_addr(&self) -> SocketAddr {
        self.ws_addr
    }

    /// The crash report directory.
    pub fn crash_dir(&self) -> std::path::PathBuf {
        self.crash_dir.clone()
    }

    /// The watchdog's dump directory.
    pub fn dump_dir(&self) -> std::path::PathBuf {
        self.dump_dir.clone()
    }

    /// Samples the watchdog took so far.
    pub fn watchdog_samples(&self) -> u64 {
        self.watchdog_stats.samples()
    }

    /// Resolves once this fleet host has drained (`warden drain`) and is to shut down; never otherwise.
    pub async fn drained(&self) {
        self.drained.cancelled().await
    }

    /// The admin endpoint's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// A client of the admin endpoint, with its token.
    pub fn admin_client(&self) -> crate::admin::Client {
        crate::admin::Client::new(self.admin_addr, self.admin_token.clone())
    }

    /// The TCP listener's address.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// The rooms open now.
    pub fn rooms(&self) -> Vec<crate::room::RoomSummary> {
        self.ctx.rooms.list()
    }

    /// The loaded games.
    pub fn games(&self) -> Vec<String> {
        self.ctx.rooms.games()
    }

    /// The save queue.
    pub fn saves(&self) -> &SaveQueue {
        &self.saves
    }

    /// The store (saves, registry, audit log).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The deployer (deploy events, trusted keys).
    pub fn deployer(&self) -> &Arc<Deployer> {
        &self.deployer
    }

    /// The rooms.
    pub fn room_manager(&self) -> &Rooms {
        &self.ctx.rooms
    }

    /// Graceful shutdown: rooms finish their tick, flush and tell their players; what the plugins saved
    /// is written; then every connection gets its close reason; the listeners stop.
    pub async fn shutdown(self) {
        self.deploy_stop.cancel();
        let _ = self.deploy_task.await;
        let _ = self.admin_task.await;
        if let Some(watchdog) = self.watchdog {
            let _ = watchdog.await;
        }
        let _ = self.alerts.await;
        // Rooms stop for the shutdown, not for the lease.
        let lease = self.fleet.map(|(lease, member)| {
            member.abort();
            lease
        });
        self.ctx.rooms.shutdown().await;
        // The store may be away (its writer retries): a shutdown does not wait on it for ever. What is not
        // written is not lost: each room resumes from its last stored checkpoint and durable journal.
        if tokio::time::timeout(std::time::Duration::from_secs(30), self.ctx.rooms.flush_checkpoints()).await.is_err() {
            tracing::error!(
                "the rooms' last checkpoints were not written within 30 s (is the store reachable?); they resume from the ones before"
            );
        }
        if let Err(e) = self.saves.close().await {
            tracing::error!("failed to write the last saves at shutdown: {e:#}");
        }
        // The rooms' last writes are in: other hosts may take them at once.
        if let Some(lease) = lease {
            lease.release().await;
        }
        self.ctx.shutdown.cancel();
        for listener in self.listeners {
            let _ = listener.await;
        }
        // Give sessions a moment to write their close reasons.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
        while Arc::strong_count(&self.ctx) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

/// Joins the fleet: rooms are refused until the host has registered, then served while it holds its
/// lease ([`crate::fleet::member`]).
async fn join_fleet(
    config: &Config,
    store: &Store,
    rooms: &Rooms,
    ws_addr: SocketAddr,
    (stop, drained): (CancellationToken, CancellationToken),
) -> Result<(crate::fleet::lease::Lease, JoinHandle<()>, crate::net::seat::Seats)> {
    use crate::fleet::{lease::Lease, member};
    let Store::Postgres(pg) = store else {
        anyhow::bail!("fleet.enabled needs storage.url to be PostgreSQL (postgres://USER@HOST:PORT/DATABASE)");
    };
    let id = config.fleet.host_id().map_err(anyhow::Error::msg)?;
    let address = match config.fleet.address.as_str() {
        "" => format!("ws://{ws_addr}/ws"),
        set => set.to_string(),
    };
    rooms.stop_serving(member::JOINING.to_string());
    // Redirects carry seat tokens signed with the fleet's shared secret.
    let seats = crate::net::seat::Seats { host: id.clone(), secret: pg.fleet_secret("seat").await? };
    // The lease lives in a session of its own: renewals never queue behind the room writer's commits.
    let report = {
        let rooms = rooms.clone();
        move || (rooms.open_count() as i64, rooms.games())
    };
    tracing::info!(host = %id, address, "joining the fleet");
    let times = config.fleet.times();
    let lease = Lease::start(pg.clone(), id.clone(), address, times, report);
    let member = member::serve_while_leased(lease.watch(), (id.into(), pg.clone()), rooms.clone(), times.heartbeat, (stop, drained));
    let task = tokio::spawn(member);
    Ok((lease, task, seats))
}
