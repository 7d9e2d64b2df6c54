//! The operator's admin endpoint: HTTP with JSON, bound to a loopback address, every request carrying
//! `Authorization: Bearer <token>`. `warden status`, `rollback`, `promote` and `pause` are its clients
//! ([`Client`]); every action is an audit entry with the actor `admin`.
//!
//! - `GET /`: the operator page (HTML, CSS and JavaScript in the binary; it asks for the token once and
//!   then uses the endpoints below, as the CLI does).
//! - `GET /status`: [`Status`].
//! - `GET /metrics`: the Prometheus exposition ([`metrics`]); `admin.metrics_public` serves it without
//!   the token.
//! - `GET /admin/rooms`: every open room ([`RoomSummary`](crate::room::RoomSummary));
//!   `GET /admin/rooms/{game}/{room}` one in full, `.../dump` its checkpoint and journal ([`rooms`]).
//! - `POST /plugins/{name}/rollback` `{"to": "1.2.0"?, "force": false}`: mark the serving version bad and
//!   go back to the previous stable version (anything else needs `force`).
//! - `POST /plugins/{name}/promote`: move the rollout one phase on.
//! - `POST /plugins/{name}/pause` `{"resume": false}`: hold the rollout in its phase (or resume it).
//! - `GET /admin/log`: the log filter ([`crate::logs::LogStatus`]); `POST /admin/log`
//!   `{"filter": "warden=debug", "for_ms": 600000?}` replaces it (for a while).
//! - `GET /admin/rules`: the threshold rules and their firings; `PUT /admin/rules` `[rule, ...]` replaces
//!   them until the next restart ([`crate::rules`]; in a fleet, on every host and for good); `GET /admin/alerts`: the last firings, newest first.
//! - `POST /plugins/{name}/switch` `{"switch": "feature:chat" | "joins", "on": false}`: a runtime switch
//!   ([`crate::deploy::switches`]).

pub mod alerts;
pub mod metrics;
pub mod rooms;
pub mod watchdog;

use crate::deploy::{Deployer, OperatorError, Status};
use anyhow::{Context as _, Result, bail};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse as _;
use axum::routing::{get, post};
use axum::{Json, Router};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// A rollback request.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct RollbackRequest {
    /// The version to go back to (default: the previous stable one).
    pub to: Option<String>,
    /// Allow a version other than the previous stable one.
    #[serde(default)]
    pub force: bool,
}

/// A pause request.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct PauseRequest {
    /// Resume instead of pausing.
    #[serde(default)]
    pub resume: bool,
}

/// A switch request.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SwitchRequest {
    /// `feature:NAME` or `joins`.
    pub switch: String,
    /// On or off.
    pub on: bool,
}

/// A log filter change.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct LogRequest {
    /// The new filter (`warden=debug`, `warn,warden::room=trace`, ...).
    pub filter: String,
    /// Revert to the filter it replaces after this many milliseconds.
    #[serde(default)]
    pub for_ms: Option<u64>,
}

/// The rules in force and how often each fired.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RulesView {
    /// The rules.
    pub rules: Vec<crate::rules::Rule>,
    /// Firings so far: (rule, action, count).
    pub fired: Vec<(String, crate::rules::Action, u64)>,
}

/// What an action did.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    /// In words.
    pub message: String,
}

#[derive(Clone)]
struct AppState {
    deployer: Arc<Deployer>,
    rooms: crate::room::Rooms,
    token: Arc<str>,
    metrics: Arc<metrics::Sources>,
    metrics_public: bool,
    log: Arc<crate::logs::LogControl>,
}

type Reply<T> = Result<Json<T>, (StatusCode, String)>;

/// The token: `admin.token`, or the one in `<data_dir>/admin.token`, made (random, mode 0600) if absent.
pub fn token(configured: &str, data_dir: &std::path::Path) -> Result<String> {
    if !configured.is_empty() {
        return Ok(configured.to_string());
    }
    let path = token_path(data_dir);
    if let Ok(existing) = std::fs::read_to_string(&path)
        && !existing.trim().is_empty()
    {
        return Ok(existing.trim().to_string());
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("failed to create {}", data_dir.display()))?;
    let mut bytes = [0u8; 24];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes).context("failed to read /dev/urandom")?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    crate::commands::sign::write_private(&path, token.as_bytes())?;
    Ok(token)
}

fn token_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("admin.token")
}

/// Binds the endpoint (`config.addr`) and serves it until `stop`.
pub async fn serve(
    config: &crate::config::AdminConfig,
    token: String,
    deployer: Arc<Deployer>,
    metrics: Arc<metrics::Sources>,
    log: Arc<crate::logs::LogControl>,
    stop: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let addr = config.addr;
    if !addr.ip().is_loopback() {
        bail!("admin.addr must be a loopback address, not {addr}");
    }
    let rooms = metrics.rooms.clone();
    let state = AppState { deployer, rooms, token: token.into(), metrics, metrics_public: config.metrics_public, log };
    let app = Router::new()
        .route("/", get(|| async { page("text/html; charset=utf-8", include_str!("page/index.html")) }))
        .route("/page.js", get(|| async { page("text/javascript; charset=utf-8", include_str!("page/page.js")) }))
        .route("/page.css", get(|| async { page("text/css; charset=utf-8", include_str!("page/page.css")) }))
        .route("/status", get(status))
        .route("/metrics", get(prometheus))
        .route("/admin/log", get(log_status).post(set_log))
        .route("/admin/rules", get(list_rules).put(set_rules))
        .route("/admin/alerts", get(list_alerts))
        .route("/admin/rooms", get(list_rooms))
        .route("/admin/rooms/{game}/{room}", get(room_detail))
        .route("/admin/rooms/{game}/{room}/dump", get(room_dump))
        .route("/plugins/{name}/rollback", post(rollback))
        .route("/plugins/{name}/promote", post(promote))
        .route("/plugins/{name}/pause", post(pause))
        .route("/plugins/{name}/switch", post(switch))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("failed to listen on {addr} (admin.addr)"))?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await {
            tracing::error!("the admin endpoint failed: {e}");
        }
    });
    Ok((local, task))
}

/// A file of the operator page (public: it holds no data; every figure it shows needs the token).
fn page(content_type: &'static str, body: &'static str) -> axum::response::Response {
    ([(axum::http::header::CONTENT_TYPE, content_type), (axum::http::header::CACHE_CONTROL, "no-cache")], body).into_response()
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), (StatusCode, String)> {
    let given = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let ok = given.is_some_and(|g| {
        let (a, b) = (g.as_bytes(), state.token.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    });
    if ok {
        Ok(())
    } else {
        Err((
            StatusCode::UNAUTHORIZED,
            "missing or wrong admin token: send Authorization: Bearer <token> (admin.token, or the data directory's admin.token file)"
                .into(),
        ))
    }
}

fn failed(e: anyhow::Error) -> (StatusCode, String) {
    (StatusCode::BAD_REQUEST, format!("{e:#}"))
}

async fn status(State(state): State<AppState>, headers: HeaderMap) -> Reply<Status> {
    authorize(&state, &headers)?;
    let mut status = state.deployer.status().await.map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")))?;
    status.log = Some(state.log.status());
    Ok(Json(status))
}

async fn list_rules(State(state): State<AppState>, headers: HeaderMap) -> Reply<RulesView> {
    authorize(&state, &headers)?;
    let rules = state.rooms.rules();
    let fired = rules.fired().into_iter().map(|((rule, action), n)| (rule, action, n)).collect();
    Ok(Json(RulesView { rules: rules.current().rules().cloned().collect(), fired }))
}

async fn set_rules(State(state): State<AppState>, headers: HeaderMap, Json(rules): Json<Vec<crate::rules::Rule>>) -> Reply<Outcome> {
    authorize(&state, &headers)?;
    let names: Vec<String> = rules.iter().map(|r| r.name.clone()).collect();
    let set = crate::rules::RuleSet::new(rules.clone()).map_err(failed)?;
    // In a fleet, stored for every host (each applies them from the registry's event).
    let fleet = state.deployer.share_rules(&rules, "admin").await.map_err(failed)?;
    state.rooms.rules().replace(set);
    let detail = format!("{} rule(s) in force: {}", names.len(), names.join(", "));
    if let Err(e) = state.deployer.store().audit("admin", "rules", None, None, &detail).await {
        tracing::error!("failed to audit the rules' change ({detail}): {e:#}");
    }
    let lasts = match fleet {
        true => "on every host of the fleet, and on hosts that start later",
        false => "until the next restart, which reads [[rules]] in warden.toml",
    };
    Ok(Json(Outcome { message: format!("{detail} ({lasts})") }))
}

async fn list_alerts(State(state): State<AppState>, headers: HeaderMap) -> Reply<Vec<crate::rules::Alert>> {
    authorize(&state, &headers)?;
    Ok(Json(state.rooms.rules().recent()))
}

async fn log_status(State(state): State<AppState>, headers: HeaderMap) -> Reply<crate::logs::LogStatus> {
    authorize(&state, &headers)?;
    Ok(Json(state.log.status()))
}

async fn set_log(State(state): State<AppState>, headers: HeaderMap, Json(req): Json<LogRequest>) -> Reply<Outcome> {
    authorize(&state, &headers)?;
    let lasting = req.for_ms.map(std::time::Duration::from_millis);
    let message = state.log.set(&req.filter, lasting, "admin").await.map_err(failed)?;
    Ok(Json(Outcome { message }))
}

async fn prometheus(State(state): State<AppState>, headers: HeaderMap) -> Result<axum::response::Response, (StatusCode, String)> {
    if !state.metrics_public {
        authorize(&state, &headers)?;
    }
    let text = state.metrics.render().await.map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")))?;
    Ok(([(axum::http::header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response())
}

async fn list_rooms(State(state): State<AppState>, headers: HeaderMap) -> Reply<Vec<crate::room::RoomSummary>> {
    authorize(&state, &headers)?;
    Ok(Json(state.rooms.list()))
}

fn no_room(game: &str, room: &str) -> (StatusCode, String) {
    (StatusCode::NOT_FOUND, format!("no room {room} of {game} is open (`warden rooms` lists the open ones)"))
}

async fn room_detail(
    State(state): State<AppState>,
    Path((game, room)): Path<(String, String)>,
    headers: HeaderMap,
) -> Reply<rooms::RoomDetail> {
    authorize(&state, &headers)?;
    rooms::detail(&state.rooms, &game, &room).await.map(Json).ok_or_else(|| no_room(&game, &room))
}

async fn room_dump(
    State(state): State<AppState>,
    Path((game, room)): Path<(String, String)>,
    headers: HeaderMap,
) -> Reply<crate::room::dumpfile::DumpFile> {
    authorize(&state, &headers)?;
    rooms::dump(&state.rooms, &game, &room).await.map(Json).ok_or_else(|| no_room(&game, &room))
}

async fn rollback(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Option<Json<RollbackRequest>>,
) -> Reply<Outcome> {
    authorize(&state, &headers)?;
    let req = body.map(|b| b.0).unwrap_or_default();
    let (bad, to) = state.deployer.operator_rollback(&name, req.to.as_deref(), req.force, "admin").await.map_err(|e| match e {
        OperatorError::NeedsForce(why) => (StatusCode::CONFLICT, why),
        OperatorError::Failed(e) => failed(e),
    })?;
    Ok(Json(Outcome { message: format!("{name} {bad} marked bad; every room is going back to {to}") }))
}

async fn promote(State(state): State<AppState>, Path(name): Path<String>, headers: HeaderMap) -> Reply<Outcome> {
    authorize(&state, &headers)?;
    let message = state.deployer.advance(&name, "admin", "promoted by the operator").await.map_err(failed)?;
    Ok(Json(Outcome { message }))
}

async fn pause(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Option<Json<PauseRequest>>,
) -> Reply<Outcome> {
    authorize(&state, &headers)?;
    let req = body.map(|b| b.0).unwrap_or_default();
    let message = state.deployer.pause(&name, !req.resume, "admin").await.map_err(failed)?;
    Ok(Json(Outcome { message }))
}

async fn switch(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Json(req): Json<SwitchRequest>,
) -> Reply<Outcome> {
    authorize(&state, &headers)?;
    let Some(switch) = crate::room::Switch::from_key(&req.switch) else {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("{:?} is not a switch: use feature:NAME (NAME of 1 to 64 ASCII letters, digits and -_.:) or joins", req.switch),
        ));
    };
    let message = state.deployer.switch(&name, &switch, req.on, "admin").await.map_err(failed)?;
    Ok(Json(Outcome { message }))
}

/// A client of the endpoint.
pub struct Client {
    addr: SocketAddr,
    token: String,
}

impl Client {
    /// A client of the endpoint at `addr` with `token`.
    pub fn new(addr: SocketAddr, token: String) -> Self {
        Client { addr, token }
    }

    /// The client for a configuration: its `admin.addr`, and its token (`admin.token` or the data
    /// directory's `admin.token` file).
    pub fn for_config(config: &crate::config::Config) -> Result<Client> {
        let token = if config.admin.token.is_empty() {
            let path = token_path(&config.data_dir);
            std::fs::read_to_string(&path)
                .with_context(|| {
                    format!(
                        "no admin token: {} is missing (is the server running with this data_dir?) and admin.token is not set",
                        path.display()
                    )
                })?
                .trim()
                .to_string()
        } else {
            config.admin.token.clone()
        };
        Ok(Client::new(config.admin.addr, token))
    }

    /// The token it sends.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// `GET /status`.
    pub async fn status(&self) -> Result<Status> {
        self.request("GET", "/status", None).await
    }

    /// `POST /plugins/{name}/{action}` with `body`.
    pub async fn action<B: serde::Serialize>(&self, name: &str, action: &str, body: &B) -> Result<Outcome> {
        self.request("POST", &format!("/plugins/{name}/{action}"), Some(serde_json::to_vec(body)?)).await
    }

    /// `GET /admin/log`: the log filter.
    pub async fn log_status(&self) -> Result<crate::logs::LogStatus> {
        self.request("GET", "/admin/log", None).await
    }

    /// `POST /admin/log`: replaces the log filter (for a while).
    pub async fn set_log(&self, req: &LogRequest) -> Result<Outcome> {
        self.request("POST", "/admin/log", Some(serde_json::to_vec(req)?)).await
    }

    /// `GET /admin/rules`: the rules and their firings.
    pub async fn rules(&self) -> Result<RulesView> {
        self.request("GET", "/admin/rules", None).await
    }

    /// `PUT /admin/rules`: replaces the rules.
    pub async fn set_rules(&self, rules: &[crate::rules::Rule]) -> Result<Outcome> {
        self.request("PUT", "/admin/rules", Some(serde_json::to_vec(rules)?)).await
    }

    /// `GET /admin/alerts`: the last firings, newest first.
    pub async fn alerts(&self) -> Result<Vec<crate::rules::Alert>> {
        self.request("GET", "/admin/alerts", None).await
    }

    /// `GET /admin/rooms`: every open room.
    pub async fn rooms(&self) -> Result<Vec<crate::room::RoomSummary>> {
        self.request("GET", "/admin/rooms", None).await
    }

    /// `GET /admin/rooms/{game}/{room}`: one room in full.
    pub async fn room(&self, game: &str, room: &str) -> Result<rooms::RoomDetail> {
        self.request("GET", &format!("/admin/rooms/{game}/{room}"), None).await
    }

    /// `GET /admin/rooms/{game}/{room}/dump`: the room's checkpoint and journal.
    pub async fn room_dump(&self, game: &str, room: &str) -> Result<crate::room::dumpfile::DumpFile> {
        self.request("GET", &format!("/admin/rooms/{game}/{room}/dump"), None).await
    }

    /// `GET /metrics`: the exposition text.
    pub async fn metrics(&self) -> Result<String> {
        let bytes = self.send("GET", "/metrics", None).await?;
        String::from_utf8(bytes.to_vec()).context("the metrics are not UTF-8")
    }

    async fn request<T: serde::de::DeserializeOwned>(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> Result<T> {
        let bytes = self.send(method, path, body).await?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("unexpected answer from the admin endpoint: {}", String::from_utf8_lossy(&bytes)))
    }

    async fn send(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> Result<bytes::Bytes> {
        use http_body_util::{BodyExt as _, Full};
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("cannot reach the admin endpoint at {} (is `warden serve` running? admin.addr)", self.addr))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string())
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(Full::new(bytes::Bytes::from(body.unwrap_or_default())))?;
        let res = sender.send_request(req).await?;
        let status = res.status();
        let bytes = res.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!("{} ({status})", String::from_utf8_lossy(&bytes));
        }
        Ok(bytes)
    }
}
