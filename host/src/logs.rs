//! The process's logs: `tracing` to stderr, filtered by `WARDEN_LOG` (default `warn`), through a filter
//! that `warden log` can replace while the server runs ([`LogControl`]), by itself again after a while
//! if asked (`--for 10m`), each change audited.
//!
//! A disabled span or event costs what it did with a fixed filter: tracing's global level hint is
//! checked first, and a change rebuilds the callsites' cached interest.

use crate::storage::Store;
use anyhow::{Result, anyhow};
use std::io::IsTerminal as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// The filter when `WARDEN_LOG` is not set.
pub const DEFAULT_FILTER: &str = "warn";

static HANDLE: OnceLock<(reload::Handle<EnvFilter, Registry>, Mutex<String>)> = OnceLock::new();

/// Installs the process's subscriber: stderr (in colour only on a terminal), filtered by `WARDEN_LOG`
/// or [`DEFAULT_FILTER`], replaceable later with [`set_filter`].
pub fn init() {
    let text = std::env::var("WARDEN_LOG").ok().filter(|f| parse(f).is_ok()).unwrap_or_else(|| DEFAULT_FILTER.to_string());
    let (layer, handle) = reload::Layer::new(parse(&text).expect("checked above"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal());
    if tracing_subscriber::registry().with(layer).with(fmt).try_init().is_ok() {
        let _ = HANDLE.set((handle, Mutex::new(text)));
    }
}

/// `filter` as an [`EnvFilter`], or an error that says what a filter looks like.
pub fn parse(filter: &str) -> Result<EnvFilter> {
    if filter.trim().is_empty() {
        return Err(anyhow!("an empty log filter: give a level (error, warn, info, debug, trace) or target=level pairs"));
    }
    EnvFilter::builder().parse(filter).map_err(|e| {
        anyhow!(
            "{filter:?} is not a log filter ({e}): give a level (error, warn, info, debug, trace) or target=level pairs \
             separated by commas, e.g. warn,warden=debug or warden::room=trace"
        )
    })
}

/// The filter in force, if this process installed a replaceable one ([`init`]).
pub fn filter() -> Option<String> {
    HANDLE.get().map(|(_, text)| text.lock().unwrap().clone())
}

/// Replaces the filter; returns the one it replaced.
pub fn set_filter(filter: &str) -> Result<String> {
    let parsed = parse(filter)?;
    let (handle, text) = HANDLE.get().ok_or_else(|| {
        anyhow!(
            "this process's log filter cannot be changed: it was not started by `warden serve` (an embedded server logs as its host set up)"
        )
    })?;
    let mut text = text.lock().unwrap();
    handle.reload(parsed).map_err(|e| anyhow!("failed to change the log filter: {e}"))?;
    Ok(std::mem::replace(&mut *text, filter.to_string()))
}

/// The log filter, as `warden status` and `GET /admin/log` show it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogStatus {
    /// The filter in force (`None`: this process's filter cannot be changed).
    pub filter: Option<String>,
    /// When a timed change reverts (Unix milliseconds), and to what.
    pub reverts: Option<(i64, String)>,
}

/// Changes the log filter for the admin endpoint: audited, optionally reverting by itself.
pub struct LogControl {
    store: Store,
    /// The pending revert: (generation of the change it belongs to, when, to what).
    revert: Mutex<(u64, Option<(i64, String)>)>,
}

impl LogControl {
    /// A control that audits to `store`.
    pub fn new(store: Store) -> Arc<Self> {
        Arc::new(LogControl { store, revert: Mutex::new((0, None)) })
    }

    /// The filter now, and the pending revert.
    pub fn status(&self) -> LogStatus {
        LogStatus { filter: filter(), reverts: self.revert.lock().unwrap().1.clone() }
    }

    /// Sets the filter to `to` (for `lasting`, then back to the filter it replaced, unless it was changed
    /// again meanwhile), audited with `actor`. Returns what it did, in words.
    pub async fn set(self: &Arc<Self>, to: &str, lasting: Option<Duration>, actor: &str) -> Result<String> {
        let previous = set_filter(to)?;
        let generation = {
            let mut revert = self.revert.lock().unwrap();
            revert.0 += 1;
            revert.1 = lasting.map(|d| (crate::storage::now_ms() + d.as_millis() as i64, previous.clone()));
            revert.0
        };
        let how_long = lasting.map(|d| format!(" for {}, then back to {previous}", words(d))).unwrap_or_default();
        let detail = format!("{previous} -> {to}{how_long}");
        self.audit(actor, &detail).await;
        tracing::warn!(actor, "log filter changed: {detail}");
        if let Some(after) = lasting {
            let this = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                this.revert(generation).await;
            });
        }
        Ok(format!("log filter: {detail}"))
    }

    /// Ends the timed change `generation`, if no later change replaced it.
    async fn revert(&self, generation: u64) {
        let back = {
            let mut revert = self.revert.lock().unwrap();
            if revert.0 != generation {
                return;
            }
            revert.1.take()
        };
        let Some((_, to)) = back else { return };
        match set_filter(&to) {
            Ok(from) => {
                tracing::warn!("log filter back to {to} (the timed change ended)");
                self.audit("log-timer", &format!("{from} -> {to} (the timed change ended)")).await;
            }
            Err(e) => tracing::error!("failed to put the log filter back to {to}: {e:#}"),
        }
    }

    async fn audit(&self, actor: &str, detail: &str) {
        if let Err(e) = self.store.audit(actor, "log", None, None, detail).await {
            tracing::error!("failed to write the audit entry of a log filter change ({detail}): {e:#}");
        }
    }
}

/// `d` for people: `90 s`, `10 min`, `2 h`.
fn words(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{} ms", d.as_millis()),
        _ if s.is_multiple_of(3600) => format!("{} h", s / 3600),
        _ if s.is_multiple_of(60) => format!("{} min", s / 60),
        _ => format!("{s} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_a_bad_one_says_what_a_filter_looks_like() {
        for good in ["warn", "warden=debug", "warn,warden::room=trace"] {
            assert!(parse(good).is_ok(), "{good}");
        }
        for bad in ["", "warden=loud"] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains("level") && err.contains("warden::room=trace") || err.contains("empty"), "{err}");
        }
        assert_eq!(words(Duration::from_secs(600)), "10 min");
        assert_eq!(words(Duration::from_secs(7200)), "2 h");
        assert_eq!(words(Duration::from_secs(90)), "90 s");
    }
}
