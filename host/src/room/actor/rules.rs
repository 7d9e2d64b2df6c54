//! What a room counts for the threshold rules ([`crate::rules`]): messages (all, or of one `type`) and
//! the metrics its plugin reports, per player, room or game. The room sums them per rule and subject
//! itself and hands the sums to the rules every quarter of a second of ticks (one lock, one lookup per
//! subject, instead of per input); a kicking rule that fires removes the player (who gets `kicked` with
//! the rule's reason; `on-leave` follows at the next tick, journaled like any leave).

use super::*;
use crate::rules::Action;

/// The `type` field of a MessagePack map, borrowed from the payload (no allocation). The SDK's tagged
/// enums write it first, which is read directly; any other map goes through serde.
fn message_tag(payload: &[u8]) -> Option<&str> {
    // fixmap, then the fixstr key "type", then a fixstr or str8 value.
    if let [0x81..=0x8f, 0xa4, b't', b'y', b'p', b'e', rest @ ..] = payload {
        let (len, at) = match rest {
            [m @ 0xa0..=0xbf, ..] => (usize::from(m & 0x1f), 1),
            [0xd9, n, ..] => (usize::from(*n), 2),
            _ => return message_tag_any(payload),
        };
        return rest.get(at..at + len).and_then(|s| std::str::from_utf8(s).ok());
    }
    message_tag_any(payload)
}

fn message_tag_any(payload: &[u8]) -> Option<&str> {
    #[derive(serde::Deserialize)]
    struct Tagged<'a> {
        #[serde(rename = "type", borrow)]
        ty: &'a str,
    }
    rmp_serde::from_slice::<Tagged<'_>>(payload).ok().map(|t| t.ty)
}

impl Room {
    /// Takes the server's rules if they changed (one pointer comparison a tick when not).
    pub(super) fn follow_rules(&mut self) {
        let rules = &self.rooms.0.rules;
        if rules.is_current(&self.rule_set) {
            return;
        }
        self.rule_set = rules.current();
        self.game_rules = self.rule_set.for_game(&self.key.0);
        self.observed.clear();
    }

    /// Counts a call that returned (`ok` or `err`) for the rules that ask about it.
    pub(super) fn count(&mut self, instance: &mut PluginInstance, player: Option<&Arc<str>>, input: Input<'_>) {
        let set = &self.rule_set;
        let observed = &mut self.observed;
        let mut add = |i: usize, value: f64| {
            let Some(subject) = set.subject(i, player, &self.room_id) else { return };
            match observed.iter_mut().find(|(j, s, _)| *j == i && *s == subject) {
                Some((_, _, sum)) => *sum += value,
                None => observed.push((i, subject, value)),
            }
        };
        if let Input::Msg(_, payload) = input {
            for &i in &self.game_rules.messages {
                add(i, 1.0);
            }
            if !self.game_rules.types.is_empty()
                && let Some(ty) = message_tag(payload)
            {
                for (t, i) in &self.game_rules.types {
                    if t == ty {
                        add(*i, 1.0);
                    }
                }
            }
        }
        if !self.game_rules.metrics.is_empty() {
            for (name, sum) in instance.host_mut().take_metrics() {
                for (n, i) in &self.game_rules.metrics {
                    if *n == name {
                        add(*i, sum.sum);
                    }
                }
            }
        }
    }

    /// Every quarter of a second of ticks (or when many subjects wait), hands the sums to the rules and
    /// kicks whom a firing rule names.
    pub(super) fn judge(&mut self) {
        let every = (u64::from(self.rooms.0.config.tick_hz) / 4).max(1);
        if self.observed.is_empty() || (!self.tick.is_multiple_of(every) && self.observed.len() < 64) {
            return;
        }
        let alerts = self.rooms.0.rules.observe(&self.rule_set, &self.key.0, &self.observed);
        self.observed.clear();
        for alert in alerts {
            if alert.action == Action::Kick
                && let Some(player) = &alert.player
            {
                tracing::warn!(player, rule = %alert.rule, "kicked by a rule: {alert}");
                self.kick(player, alert.detail.clone().unwrap_or_default());
            }
        }
    }

    /// Removes `player`, telling them `reason`; `on-leave` runs at the next tick.
    pub(super) fn kick(&mut self, player: &str, reason: String) {
        if let Some((id, conn)) = self.members.remove_entry(player) {
            self.direct_to(&conn, &id, &ServerEnvelope::Kicked { reason });
            conn.in_room.store(false, Ordering::Release);
            self.send_batch(&id, &conn);
            self.leaving.push(id);
        }
    }
}
