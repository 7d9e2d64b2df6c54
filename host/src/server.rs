//! A running server: plugins loaded, rooms ready, WebSocket and TCP listeners accepting.

use crate::config::Config;
use crate::net::limits::ConnectionCaps;
use crate::net::session::ServerCtx;
use crate::net::{tcp, ws};
use crate::room::{GameEntry, Rooms};
use crate::runtime::{Features, Runtime, SaveBackend};
use crate::storage::Store;
use crate::storage::queue::{QueueConfig, SaveQueue};
use anyhow::{Context as _, Result};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A started server.
pub struct Server {
    ctx: Arc<ServerCtx>,
    ws_addr: SocketAddr,
    tcp_addr: SocketAddr,
    listeners: Vec<JoinHandle<()>>,
    saves: SaveQueue,
    _runtime: Arc<Runtime>,
}

impl Server {
    /// Loads the plugins, binds the listeners and starts accepting.
    pub async fn start(config: Config) -> Result<Server> {
        let store = Store::open(&config.storage_url()).await?;
        let (queue, _writer) = SaveQueue::start(
            store,
            QueueConfig {
                flush_interval: std::time::Duration::from_millis(config.storage.flush_interval_ms),
                max_batch: config.storage.max_batch,
                high_water: config.storage.high_water,
            },
        );
        let saves: Arc<dyn SaveBackend> = Arc::new(queue.clone());
        let runtime = Arc::new(Runtime::new(config.limits.clone(), Some(config.data_dir.join("cache")))?);
        let plugins = crate::deploy::load_dir(&runtime, &config.plugin_dir, config.dev)?;
        if plugins.is_empty() {
            tracing::warn!("no plugin loaded from {}: every join will be refused", config.plugin_dir.display());
        }
        let mut games = HashMap::new();
        for (name, plugin) in plugins {
            let settings = config.plugins.get(&name).cloned().unwrap_or_default();
            let init_config = if settings.config.is_empty() { Vec::new() } else { rmp_serde::to_vec_named(&settings.config)? };
            let features = Features::on(&settings.features.iter().map(String::as_str).collect::<Vec<_>>());
            games.insert(name, Arc::new(GameEntry { plugin: Arc::new(plugin), config: init_config, features }));
        }
        let rooms = Rooms::new(games, config.rooms.clone(), saves);
        let ctx = Arc::new(ServerCtx::new(rooms, &config, queue.clone()));
        let caps = ConnectionCaps::new(config.net.max_connections, config.net.max_connections_per_ip);
        let ws_listener =
            TcpListener::bind(config.net.ws_addr).await.with_context(|| format!("failed to listen on {}", config.net.ws_addr))?;
        let tcp_listener =
            TcpListener::bind(config.net.tcp_addr).await.with_context(|| format!("failed to listen on {}", config.net.tcp_addr))?;
        let (ws_addr, tcp_addr) = (ws_listener.local_addr()?, tcp_listener.local_addr()?);
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
        Ok(Server { ctx, ws_addr, tcp_addr, listeners, saves: queue, _runtime: runtime })
    }

    /// The WebSocket listener's address.
    pub fn ws_addr(&self) -> SocketAddr {
        self.ws_addr
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

    /// Graceful shutdown: rooms finish their tick, flush and tell their players; what the plugins saved
    /// is written; then every connection gets its close reason; the listeners stop.
    pub async fn shutdown(self) {
        self.ctx.rooms.shutdown().await;
        if let Err(e) = self.saves.close().await {
            tracing::error!("failed to write the last saves at shutdown: {e:#}");
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
