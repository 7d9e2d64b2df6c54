//! A tick's section, and rooms that answer on arrival (`rooms.dispatch = "arrival"`).
//!
//! Every call of a room belongs to a tick's section: it opens with the game clock moved to the tick
//! (and the journal's `Begin`), the switches and rules taken, the timers due picked and the players who
//! left handed `on-leave`; then come the inputs; the section closes with the due timers and `on-tick`.
//! A room of the default `tick` dispatch opens and closes a section in one go at each tick, with the
//! inputs that waited in its inbox since the last one.
//!
//! An `arrival` room opens the next tick's section when the first input after a tick reaches it, hands
//! the plugin that input (and any already waiting) at once, and sends what it answered right after the
//! call; the tick closes the section. So an input sees the same game clock, and comes in the same order
//! with the tick's timers and `on-tick`, as it would in a `tick` room: the journal, a replay and a
//! rollback cannot tell the two apart. What changes is when the answers leave: after the call, not at the
//! tick's end. In a durable room they still leave only once the journal that holds the call is durable
//! ([`super::output`]): every hand-over to the store's writer carries the section so far under the
//! tick's number, and the store keeps the newest copy of a tick's row, so the section's last hand-over
//! (at the tick) holds all of it. A room has at most one hand-over in flight: while the store is slow,
//! the next inputs wait in the inbox and are taken at the tick or once the hand-over is sent. A swap
//! waits for the section to close (swaps happen at tick boundaries).

use super::*;

impl Room {
    /// Opens the next tick's section.
    pub(super) fn begin(&mut self, instance: &mut PluginInstance) -> Result<(), String> {
        let hz = u64::from(self.rooms.0.config.tick_hz);
        self.open = true;
        self.tick += 1;
        let now_ms = self.tick * 1000 / hz;
        self.clock.set(self.tick, now_ms);
        if self.journaling {
            self.journal.begin(self.tick);
        }
        self.follow_switches();
        self.follow_rules();

        // Timers due now, taken before this tick's inputs: a timer set during the tick fires later.
        self.timers.sort_by_key(|t| (t.due_ms, t.seq));
        self.due = self.timers.drain(..self.timers.partition_point(|t| t.due_ms <= now_ms)).collect();

        for player in std::mem::take(&mut self.leaving) {
            self.call(instance, None, Input::Leave(&player))?;
        }
        Ok(())
    }

    /// Hands the plugin one input of the inbox.
    pub(super) fn take_input(&mut self, instance: &mut PluginInstance, input: RoomInput) -> Result<(), String> {
        let cfg = &self.rooms.0.config;
        let (hz, max_players) = (cfg.tick_hz, cfg.max_players);
        match input {
            RoomInput::Join { conn, reply } => {
                if self.members.contains_key(&conn.id) {
                    let _ = reply.send(Err(JoinError::AlreadyIn(conn.id.to_string(), self.key.1.clone())));
                } else if self.members.len() >= max_players as usize {
                    let _ = reply.send(Err(JoinError::Full(self.key.1.clone(), max_players)));
                } else {
                    let id = conn.id.clone();
                    conn.in_room.store(true, Ordering::Release);
                    self.members.insert(id.clone(), Arc::new(conn));
                    let joined = ServerEnvelope::Joined {
                        game: self.key.0.clone(),
                        room: self.key.1.clone(),
                        version: self.version().to_string(),
                        seed: self.seed,
                        tick_hz: hz,
                        max_players,
                        players: self.members.len() as u32,
                    };
                    self.direct(&id, &joined);
                    let _ = reply.send(Ok(()));
                    self.call(instance, Some(&id), Input::Join(&id))?;
                }
            }
            RoomInput::Leave { player } => {
                if let Some(conn) = self.members.remove(&player) {
                    conn.in_room.store(false, Ordering::Release);
                    self.pending.remove(&player);
                    self.call(instance, None, Input::Leave(&player))?;
                }
            }
            RoomInput::Msg { player, payload } => {
                if self.members.contains_key(&player) {
                    self.call(instance, Some(&player), Input::Msg(&player, &payload))?;
                }
            }
            RoomInput::Dump(reply) => {
                let _ = reply.send(self.dump(instance));
            }
        }
        Ok(())
    }

    /// Whether the room takes an input as it arrives now: it dispatches on arrival, its last answers
    /// are sent, it is not backing off after a trap, and the save store is not holding its game's inputs.
    pub(super) fn takes_arrivals(&self) -> bool {
        self.arrival && self.in_flight.is_none() && self.backoff_until.is_none() && !self.rooms.0.saves.backpressure(&self.key.0)
    }

    /// An `arrival` room's turn on `first`, an input that just reached it, and any others waiting: in the
    /// next tick's section (opened if it is not), answered at once, after the critical saves the calls
    /// made and, in a durable room, through the store's writer. `Some` ends the room.
    pub(super) async fn on_arrival(&mut self, instance: &mut PluginInstance, first: RoomInput) -> Option<End> {
        if !self.open
            && let Err(crash) = self.begin(instance)
        {
            return Some(End::Crashed(crash));
        }
        let mut next = Some(first);
        while let Some(input) = next.take().or_else(|| self.rx.try_recv().ok()) {
            if let Err(crash) = self.take_input(instance, input) {
                return Some(End::Crashed(crash));
            }
            if self.backoff_until.is_some() {
                // The instance trapped and was rebuilt: the rest waits until the back-off is over.
                break;
            }
        }
        self.await_critical_saves(instance).await;
        if let Some(end) = self.lease_lost() {
            return Some(end);
        }
        self.flush();
        None
    }

    /// Waits until the critical saves the last calls made are durable: nothing they answered leaves
    /// before.
    pub(super) async fn await_critical_saves(&mut self, instance: &mut PluginInstance) {
        for durable in instance.host_mut().take_critical_saves() {
            if let Err(e) = durable.await {
                tracing::error!("a critical save was not written: {e:#}");
            }
        }
    }
}

/// Resolves when the room's hand-over in flight has been sent; never if there is none.
pub(super) async fn sent(in_flight: &mut Option<super::super::writer::Delivered>) -> Result<(), tokio::sync::oneshot::error::RecvError> {
    match in_flight {
        Some(delivered) => delivered.await,
        None => std::future::pending().await,
    }
}
