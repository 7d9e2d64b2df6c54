//! What a room sends: the plugin's sends and the host's envelopes, batched per player during a tick and
//! sent at its end; in a durable room by the writer, after the commit that holds the tick's journal (the
//! output gate, [`Room::flush`]).

use super::*;
use crate::room::writer::Batches;

impl Room {
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

    /// This tick's batches: the kicked players' and the members'.
    pub(super) fn take_batches(&mut self) -> Batches {
        let kicked = std::mem::take(&mut self.kicked);
        let mut batches = Batches::with_capacity(self.pending.len());
        if self.pending.is_empty() {
            return batches;
        }
        for (id, conn) in kicked {
            if let Some(frames) = self.pending.remove(&id) {
                batches.push((conn, frames));
            }
        }
        for (id, frames) in self.pending.drain() {
            if let Some(conn) = self.members.get(&id) {
                batches.push((conn.clone(), frames));
            }
        }
        batches
    }

    /// Sends every player's batch of this tick (or, in an `arrival` room, of the calls just made). In a
    /// durable room whose calls added to the journal, they go to the writer with the journal, which sends
    /// them once it is durable (the output gate); the room goes on meanwhile. The tick loop has waited
    /// for the room's previous hand-over first.
    ///
    /// The journal goes as one row per tick (the store keeps a tick's newest row): while a section is
    /// open ([`super::arrival`]) a hand-over carries everything since the last closed one, and the
    /// section is handed over again when it closes, answers or not, so that its row holds all of it.
    pub(super) fn flush(&mut self) {
        let batches = self.take_batches();
        let closing_partial = self.partial && !self.open;
        if batches.is_empty() && !closing_partial {
            return;
        }
        if self.durable
            && let Some(writer) = self.rooms.0.writer.get()
            && let Some(data) = self.journal.chunk_since(self.durable_mark)
        {
            if self.open {
                self.partial = true;
            } else {
                self.durable_mark = self.journal.chunk_mark();
                self.partial = false;
            }
            let (game, room) = self.names.clone();
            let row = crate::storage::JournalRow { game, room, tick: self.tick as i64, data };
            self.in_flight = Some(writer.write_and_send(
                crate::storage::RoomWrite::Journal(row),
                batches,
                self.term.number,
                self.claim.clone().map(|c| (c, self.names.clone())),
            ));
            return;
        }
        self.send_after_in_flight(batches);
    }

    /// Sends batches now, or, while the writer still holds answers of this room, through the writer after
    /// them. A player whose queue is full is disconnected as a slow consumer and leaves the room.
    pub(super) fn send_after_in_flight(&mut self, batches: Batches) {
        if batches.is_empty() {
            return;
        }
        if let Ok(true) = self.in_flight()
            && let Some(writer) = self.rooms.0.writer.get()
        {
            self.in_flight = Some(writer.send(batches, self.term.number, self.claim.as_ref().map(|_| self.names.clone())));
            return;
        }
        for (conn, frames) in batches {
            if conn.deliver(frames, self.term.lease()) {
                continue;
            }
            if let Some(conn) = self.members.remove(&conn.id) {
                conn.in_room.store(false, Ordering::Release);
                self.leaving.push(conn.id.clone());
            }
        }
    }

    /// Whether the writer holds answers of the room it has not sent yet (`Err` if the writer stopped
    /// first: nothing of the room can be made durable again).
    pub(super) fn in_flight(&mut self) -> Result<bool, String> {
        let Some(delivered) = &mut self.in_flight else { return Ok(false) };
        match delivered.try_recv() {
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => Ok(true),
            Ok(()) => {
                self.in_flight = None;
                Ok(false)
            }
            Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                self.in_flight = None;
                Err(WRITER_STOPPED.to_string())
            }
        }
    }
}

/// Why a durable room ends if the host's writer of room data is gone.
pub(super) const WRITER_STOPPED: &str = "the host's store writer stopped";
