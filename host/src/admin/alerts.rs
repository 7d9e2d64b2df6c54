//! What happens when a threshold rule fires ([`crate::rules`]), besides the kick its room, join or
//! connection already did: a warning in the log for every firing, an audit entry for `audit`, `kick` and
//! `switch`, and for `switch` the feature turned off in the subject's game, as `warden switch` would
//! (stored, audited with the actor `rule:NAME`).

use crate::deploy::Deployer;
use crate::room::Switch;
use crate::rules::{Action, Alert, Rules};
use crate::storage::Store;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Starts the task that acts on `rules`' firings until `stop`.
pub fn spawn(rules: &Rules, deployer: Arc<Deployer>, store: Store, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Alert>();
    rules.set_sink(tx);
    tokio::spawn(async move {
        loop {
            let alert = tokio::select! {
                _ = stop.cancelled() => return,
                alert = rx.recv() => match alert { Some(a) => a, None => return },
            };
            act(&alert, &deployer, &store).await;
        }
    })
}

async fn act(alert: &Alert, deployer: &Deployer, store: &Store) {
    tracing::warn!(rule = %alert.rule, game = %alert.game, subject = %alert.subject, value = alert.value, limit = alert.limit, "{alert}");
    if alert.action == Action::Log {
        return;
    }
    let game = (!alert.game.is_empty()).then_some(alert.game.as_str());
    if let Err(e) = store.audit("rules", "alert", game, None, &alert.to_string()).await {
        tracing::error!("failed to audit a rule's firing ({alert}): {e:#}");
    }
    if alert.action == Action::Switch
        && let (Some(game), Some(feature)) = (game, &alert.detail)
    {
        let actor = format!("rule:{}", alert.rule);
        match deployer.switch(game, &Switch::Feature(feature.clone()), false, &actor).await {
            Ok(done) => tracing::warn!(rule = %alert.rule, "{done}"),
            Err(e) => tracing::error!(rule = %alert.rule, "the rule could not switch {feature} off in {game}: {e:#}"),
        }
    }
}
