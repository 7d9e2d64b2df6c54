//! What a room counts for the threshold rules ([`crate::rules`]): messages (all, or of one `type`) and
//! the metrics its plugin reports. The room counts each distinct figure once per input, in plain fields
//! it owns (a row per player and one for the room, whatever the number of rules), and once per bucket
//! of the rules' windows (a tenth of the shortest, at most a second) turns the rows into per-player,
//! per-room and per-game sums for the rules (one lock, one lookup per subject); a kicking rule that
//! fires removes the player (who gets `kicked` with the rule's reason; `on-leave` follows at the next
//! tick, journaled like any leave).

use super::*;
use crate::rules::{Action, Per, Subject};

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

/// A room's counts for the rules since it last handed them over: one row of slots per player, and the
/// room's row (every input, a player's or not).
#[derive(Default)]
pub(super) struct RuleCounts {
    players: Vec<(Arc<str>, Vec<f64>)>,
    room: Vec<f64>,
    any: bool,
}

impl RuleCounts {
    /// The row of `player` (found by pointer first: the room hands the same `Arc` for a member).
    fn row(&mut self, slots: usize, player: Option<&Arc<str>>) -> Option<usize> {
        if self.room.len() != slots {
            self.room = vec![0.0; slots];
        }
        let p = player?;
        let found = self.players.iter().position(|(q, _)| Arc::ptr_eq(q, p)).or_else(|| self.players.iter().position(|(q, _)| q == p));
        Some(found.unwrap_or_else(|| {
            self.players.push((p.clone(), vec![0.0; slots]));
            self.players.len() - 1
        }))
    }

    fn add(&mut self, row: Option<usize>, slot: usize, value: f64) {
        self.room[slot] += value;
        self.any = true;
        if let Some(r) = row {
            self.players[r].1[slot] += value;
        }
    }

    fn clear(&mut self) {
        self.players.clear();
        self.room.iter_mut().for_each(|v| *v = 0.0);
        self.any = false;
    }
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
        self.rule_counts = RuleCounts::default();
    }

    /// Counts a call that returned (`ok` or `err`) for the rules that ask about it.
    pub(super) fn count(&mut self, instance: &mut PluginInstance, player: Option<&Arc<str>>, input: Input<'_>) {
        let g = &self.game_rules;
        let counts = &mut self.rule_counts;
        let row = counts.row(g.slots, player);
        if let Input::Msg(_, payload) = input {
            if let Some(slot) = g.messages {
                counts.add(row, slot, 1.0);
            }
            if !g.types.is_empty()
                && let Some(ty) = message_tag(payload)
                && let Some((_, slot)) = g.types.iter().find(|(t, _)| t == ty)
            {
                counts.add(row, *slot, 1.0);
            }
        }
        if !g.metrics.is_empty() && instance.host_mut().has_metrics() {
            for (name, sum) in instance.host_mut().take_metrics() {
                if let Some((_, slot)) = g.metrics.iter().find(|(n, _)| *n == name) {
                    counts.add(row, *slot, sum.sum);
                }
            }
        }
    }

    /// Once per bucket of the shortest window among the game's rules (a tenth of it, at most a second,
    /// at least a tick), hands the counts to the rules and kicks whom a firing rule names.
    pub(super) fn judge(&mut self) {
        if !self.rule_counts.any || !self.tick.is_multiple_of(self.game_rules.every_ticks(self.rooms.0.config.tick_hz)) {
            return;
        }
        let c = &self.rule_counts;
        let mut observed = Vec::new();
        for &(i, slot, per) in &self.game_rules.counted {
            match per {
                Per::Player => observed.extend(
                    c.players.iter().filter(|(_, row)| row[slot] != 0.0).map(|(p, row)| (i, Subject::Player(p.clone()), row[slot])),
                ),
                Per::Room if c.room[slot] != 0.0 => observed.push((i, Subject::Room(self.room_id.clone()), c.room[slot])),
                Per::Game if c.room[slot] != 0.0 => observed.push((i, Subject::Game, c.room[slot])),
                _ => {}
            }
        }
        self.rule_counts.clear();
        let alerts = self.rooms.0.rules.observe(&self.rule_set, &self.key.0, &observed);
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
            // Its batch (this tick's answers, then the kick) leaves with everyone's, after the output gate.
            self.kicked.push((id.clone(), conn));
            self.leaving.push(id);
        }
    }
}
