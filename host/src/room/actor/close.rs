//! How a room ends: why it stopped, the notices its players get, and what it hands back to the host.

use super::*;

impl Room {
    /// How the room ends now that its stop token is cancelled: `shutdown` if the host shuts down, or moved
    /// if it stopped serving rooms.
    pub(super) fn stopped(&self, shutdown: End) -> End {
        match self.rooms.0.stop.is_cancelled() {
            true => shutdown,
            // Not serving rooms, or (serving) fenced: another host took this one over.
            false => End::Moved(match self.rooms.not_serving() {
                Some(why) => format!("this host stopped serving rooms: {why}"),
                None => "another host took it over".into(),
            }),
        }
    }

    /// Answers joins that will never be served and ends the room.
    pub(super) fn refuse_all(mut self, why: JoinError, reason: crate::room::stats::CloseReason) {
        self.rooms.0.lifecycle.closed(&self.key.0, reason);
        self.rx.close();
        self.rooms.remove(&self.key);
        while let Ok(input) = self.rx.try_recv() {
            if let RoomInput::Join { reply, .. } = input {
                let _ = reply.send(Err(why.clone()));
            }
        }
    }

    pub(super) fn close(mut self, end: End) {
        if self.durable {
            // What the last tick queued was not made durable (the room ends mid-tick): it does not leave.
            self.pending.clear();
        }
        let reason = match &end {
            End::Empty => None,
            End::Shutdown | End::Halted => Some("the server is shutting down".to_string()),
            End::Moved(why) => Some(format!("the room moved ({why}); join again to carry on from your last answered move")),
            End::Crashed(why) => {
                Some(format!("the room's game was stopped: {why}; rejoining opens the room again from its last checkpoint"))
            }
        };
        if let Some(reason) = &reason {
            for (id, conn) in self.members.take_all() {
                self.direct_to(&conn, &id, &ServerEnvelope::Kicked { reason: reason.clone() });
                conn.in_room.store(false, Ordering::Release);
                self.kicked.push((id, conn));
            }
        }
        let last = self.take_batches();
        if matches!(end, End::Moved(_)) {
            // Now, not after the answers the writer holds: it drops those (their term has ended), and the
            // store it waits for may be away for long.
            for (conn, frames) in last {
                conn.deliver(frames, None);
            }
        } else {
            // After the answers the writer still holds, if any.
            self.send_after_in_flight(last);
        }
        if matches!(end, End::Crashed(_)) {
            self.rooms.closed_for_crashes(&self.key);
        }
        let why = match end {
            End::Empty => crate::room::stats::CloseReason::Empty,
            End::Shutdown | End::Halted => crate::room::stats::CloseReason::Shutdown,
            End::Moved(_) => crate::room::stats::CloseReason::Moved,
            End::Crashed(_) => crate::room::stats::CloseReason::Crashed,
        };
        self.rooms.0.lifecycle.closed(&self.key.0, why);
        tracing::debug!(tick = self.tick, "room closed");
        // Joins that raced with the close go to a new room.
        self.rx.close();
        self.rooms.remove(&self.key);
        while let Ok(input) = self.rx.try_recv() {
            if let RoomInput::Join { reply, .. } = input {
                drop(reply);
            }
        }
    }
}
