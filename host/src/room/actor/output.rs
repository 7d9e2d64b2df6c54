//! What a room sends: the plugin's sends and the host's envelopes, batched per player during a tick and
//! sent at its end; in a durable room only after the commit that holds the tick's journal (the output
//! gate, [`Room::hand_over_journal`]).

use super::*;

impl Room {
    /// In a durable room, hands this tick's journal (and that of earlier ticks without answers) to the
    /// writer if the tick has answers to send; the answers wait for the returned commit.
    pub(super) fn hand_over_journal(&mut self) -> Option<tokio::sync::oneshot::Receiver<()>> {
        if !self.durable || self.pending.is_empty() {
            return None;
        }
        let writer = self.rooms.0.writer.get()?;
        let data = self.journal.chunk_since(self.durable_mark)?;
        self.durable_mark = self.journal.chunk_mark();
        let row = crate::storage::JournalRow { game: self.key.0.clone(), room: self.key.1.clone(), tick: self.tick as i64, data };
        Some(writer.write_durable(crate::storage::RoomWrite::Journal(row)))
    }

    /// Moves the plugin's sends into the per-player batches (resolving recipients against the members
    /// now), and its timers and kicks into the room.
    pub(super) fn collect(&mut self, instance: &mut PluginInstance) {
        let host = instance.host_mut();
        for timer in host.take_timers() {
            self.timer_seq += 1;
            self.timers.push(Timer { due_ms: timer.due_ms, seq: self.timer_seq, tag: timer.tag });
        }
        let kicks = host.take_kicks();
        let outbox = host.take_outbox();
        for out in outbox {
            let mut frames: [Option<Bytes>; 2] = [None, None];
            let env = ServerMsg::Msg { data: Bytes::from(out.payload) };
            let mut push = |room: &mut Self, player: &Arc<str>| {
                let Some(conn) = room.members.get(player) else { return };
                let slot = &mut frames[(conn.format == Format::Json) as usize];
                let frame = slot.get_or_insert_with(|| envelope::encode(&env, conn.format)).clone();
                room.pending.entry(player.clone()).or_default().push(frame);
            };
            match &out.to {
                Recipient::Player(p) => {
                    if let Some((id, _)) = self.members.get_key_value(p.as_str()) {
                        push(self, &id.clone());
                    }
                }
                Recipient::All => {
                    for id in self.members.keys().cloned().collect::<Vec<_>>() {
                        push(self, &id);
                    }
                }
                Recipient::AllExcept(except) => {
                    for id in self.members.keys().filter(|id| ***id != **except).cloned().collect::<Vec<_>>() {
                        push(self, &id);
                    }
                }
            }
        }
        for kick in kicks {
            self.kick(&kick.player, kick.reason);
        }
    }

    /// Queues an envelope for a member, in order with the plugin's sends.
    pub(super) fn direct(&mut self, player: &Arc<str>, env: &ServerMsg) {
        if let Some(conn) = self.members.get(player) {
            let frame = envelope::encode(env, conn.format);
            self.pending.entry(player.clone()).or_default().push(frame);
        }
    }

    pub(super) fn direct_to(&mut self, conn: &PlayerConn, id: &Arc<str>, env: &ServerMsg) {
        let frame = envelope::encode(env, conn.format);
        self.pending.entry(id.clone()).or_default().push(frame);
    }

    /// Sends a player's batch (see [`deliver`]).
    pub(super) fn send_batch(&mut self, id: &Arc<str>, conn: &PlayerConn) -> bool {
        let Some(frames) = self.pending.remove(id) else { return true };
        deliver(conn, frames)
    }

    /// Sends every player's batch of this tick.
    ///
    /// In a durable room this runs after the wait for the commit, often on the other worker thread and
    /// with the room's data out of cache: it borrows the members instead of cloning their handles (each
    /// clone an atomic write to a line the connection's task shares), and keeps the batches' map.
    pub(super) fn flush(&mut self) {
        for (id, conn) in std::mem::take(&mut self.kicked) {
            self.send_batch(&id, &conn);
        }
        let mut pending = std::mem::take(&mut self.pending);
        for (id, frames) in pending.drain() {
            let Some(conn) = self.members.get(&id) else { continue };
            if deliver(conn, frames) {
                continue;
            }
            if let Some(conn) = self.members.remove(&id) {
                conn.in_room.store(false, Ordering::Release);
            }
            self.leaving.push(id);
        }
        self.pending = pending;
    }
}

/// Queues a batch for a player; a full queue means the player does not read: it is disconnected (false).
fn deliver(conn: &PlayerConn, frames: Vec<Bytes>) -> bool {
    if conn.out.push(conn.format, frames).is_ok() {
        return true;
    }
    conn.kill.kill(ErrorCode::SlowConsumer, "the connection fell behind reading its messages and was closed");
    false
}
