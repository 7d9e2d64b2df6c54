//! Whether this host serves rooms now. A host in a fleet serves only while it holds its lease
//! ([`crate::fleet`]): when the lease lapses every room stops at once (its players are told the room
//! moved) and joins are refused until the host has registered again.
//!
//! Rooms are started in a *term*: the stop token that ends them and the term's number. Suspending ends
//! the term. The writer sends durable answers only of the current term ([`Service::current`]): answers
//! a stopped room handed over before it stopped are dropped, not sent late, so nothing reaches a player
//! after the notice that its room moved, however long the store takes to answer. Dropping an answer is
//! safe (the player sends the move again, and the room, resumed from the store, answers it); sending one
//! after its room moved is not (it would overtake the notice, and a room that runs elsewhere).
//!
//! In a fleet, a join for a room that is not open here asks the store where it runs (`Rooms::place`):
//! here, or on another host, where the player is sent (`redirect`).

use super::JoinError;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A room's term: stop when `stop` is cancelled; its durable answers are sent only while `number` is
/// the current term; in a fleet, it claims its room as `owner` before it starts.
#[derive(Clone)]
pub(crate) struct Term {
    pub stop: CancellationToken,
    pub number: u64,
    pub owner: Option<Arc<Owner>>,
}

/// In a fleet: the host that rooms are claimed for, under the incarnation of its lease.
pub struct Owner {
    /// The host's id.
    pub host: Arc<str>,
    /// The incarnation it serves under now.
    pub incarnation: i64,
    /// The fleet's PostgreSQL, where rooms are claimed.
    pub store: crate::storage::postgres::PgStore,
    /// Whether that incarnation's lease still holds by the host's own clock.
    pub lease: LeaseCheck,
}

/// Whether a host's lease still holds, judged by its own clock against a deadline that is never later
/// than the database's ([`crate::fleet::lease`]): nothing a room computes may reach a player once it
/// fails. The rooms ask it before every tick and before their answers leave, the writer before it sends
/// durable answers, and a connection's writer before it writes them to the socket. So a host that was
/// paused (SIGSTOP, a VM stall) past its lease sends nothing on waking, whichever of its tasks runs first:
/// it need not wait for its lease keeper to notice and stop the rooms.
#[derive(Clone)]
pub struct LeaseCheck(Arc<dyn Fn() -> bool + Send + Sync>);

impl LeaseCheck {
    /// A check that asks `holds`.
    pub fn new(holds: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        LeaseCheck(Arc::new(holds))
    }

    /// Whether the lease holds now.
    pub fn holds(&self) -> bool {
        (self.0)()
    }
}

/// Why a room stops when its host's lease ran out before the lease keeper stopped it.
pub(crate) const LEASE_RAN_OUT: &str = "this host's fleet lease ran out: it was paused, or cut off from PostgreSQL";

struct State {
    /// Cancelled when the term ends (or the host shuts down: it is the shutdown token's child).
    stop: CancellationToken,
    number: u64,
    owner: Option<Arc<Owner>>,
    /// Why rooms are not served now (none: they are).
    refusing: Option<String>,
}

/// See the module documentation.
pub(crate) struct Service {
    shutdown: CancellationToken,
    state: Mutex<State>,
    /// Notified when the last room of the host has ended.
    pub emptied: Notify,
}

impl Service {
    /// Serving, in term 0, ended by `shutdown` too.
    pub fn new(shutdown: &CancellationToken) -> Self {
        let state = State { stop: shutdown.child_token(), number: 0, owner: None, refusing: None };
        Service { shutdown: shutdown.clone(), state: Mutex::new(state), emptied: Notify::new() }
    }

    /// The term a room starting now runs in, or why no room may start.
    pub fn enter(&self) -> Result<Term, String> {
        let state = self.state.lock().unwrap();
        match &state.refusing {
            Some(why) => Err(why.clone()),
            None => Ok(Term { stop: state.stop.child_token(), number: state.number, owner: state.owner.clone() }),
        }
    }

    /// Ends the term: every room of it stops, and no room starts until [`Service::resume`].
    pub fn suspend(&self, why: String) {
        let mut state = self.state.lock().unwrap();
        state.refusing = Some(why);
        state.number += 1;
        state.stop.cancel();
        state.stop = self.shutdown.child_token();
    }

    /// Rooms may start again (in the term that [`Service::suspend`] began), claimed for `owner` in a fleet.
    pub fn resume(&self, owner: Option<Owner>) {
        let mut state = self.state.lock().unwrap();
        state.refusing = None;
        state.owner = owner.map(Arc::new);
    }

    /// In a fleet, the host rooms are claimed for now (none outside a fleet, or while not serving).
    pub fn owner(&self) -> Option<Arc<Owner>> {
        let state = self.state.lock().unwrap();
        state.refusing.is_none().then(|| state.owner.clone()).flatten()
    }

    /// Why rooms are not served now, if they are not.
    pub fn refusing(&self) -> Option<String> {
        self.state.lock().unwrap().refusing.clone()
    }

    /// The current term's number, locked: a term does not end while the guard is held (the writer
    /// holds it while it sends, so a suspension waits for answers being sent and the ones after it are
    /// dropped).
    pub fn current(&self) -> TermGuard<'_> {
        TermGuard(self.state.lock().unwrap())
    }
}

/// See [`Service::current`].
pub(crate) struct TermGuard<'a>(MutexGuard<'a, State>);

impl TermGuard<'_> {
    /// Whether answers of term `number` may be sent: the term is current and, in a fleet, the host's
    /// lease holds.
    pub fn admits(&self, number: u64) -> bool {
        self.0.number == number && self.0.owner.as_ref().is_none_or(|owner| owner.lease.holds())
    }

    /// In a fleet, the check that answers sent now carry to the connection's writer.
    pub fn lease(&self) -> Option<&LeaseCheck> {
        self.0.owner.as_ref().map(|owner| &owner.lease)
    }
}

impl Term {
    /// Whether the room may still send what it computes: outside a fleet always; in one, while the host's
    /// lease holds.
    pub fn lease_holds(&self) -> bool {
        self.owner.as_ref().is_none_or(|owner| owner.lease.holds())
    }

    /// The lease check its answers carry to the connection's writer, in a fleet.
    pub fn lease(&self) -> Option<&LeaseCheck> {
        self.owner.as_ref().map(|owner| &owner.lease)
    }
}

impl super::Rooms {
    /// Stops serving rooms: every room stops at once (no final checkpoint: it resumes from its last one
    /// and its durable journal), its players are told that it moved and why, and joins are refused with
    /// `why` until [`Self::serve`]. Answers that rooms handed to the writer and that are not sent
    /// yet are dropped.
    pub fn stop_serving(&self, why: String) {
        tracing::info!("rooms stop: {why}");
        self.0.service.suspend(why);
    }

    /// Resolves once every room that [`Self::stop_serving`] stopped has ended and what they handed to
    /// the writer is durable (a room that opens again reads it). Then [`Self::serve`] may follow.
    pub async fn stopped_rooms_ended(&self) {
        loop {
            let emptied = self.0.service.emptied.notified();
            tokio::pin!(emptied);
            emptied.as_mut().enable();
            if self.0.rooms.lock().unwrap().is_empty() {
                break;
            }
            emptied.await;
        }
        self.flush_checkpoints().await;
    }

    /// Serves rooms again after [`Self::stop_serving`] (in a new term); in a fleet, each room claims its
    /// room for `owner` as it opens.
    pub fn serve(&self, owner: Option<Owner>) {
        self.0.service.resume(owner);
    }

    /// Stops room `room` of `game` at once (its writes were fenced: another host owns it now). Its
    /// players are told it moved.
    pub fn fence(&self, game: &str, room: &str) {
        if let Some((_, summary)) = self.0.rooms.lock().unwrap().get(&(game.to_string(), room.to_string())) {
            tracing::warn!(game, room, "another host took the room over: it stops here");
            summary.stop.cancel();
        }
    }

    /// Why rooms are not served now (none: they are).
    pub fn not_serving(&self) -> Option<String> {
        self.0.service.refusing()
    }

    /// Whether room `room` of `game` is open here.
    fn is_open(&self, game: &str, room: &str) -> bool {
        let key = (game.to_string(), room.to_string());
        self.0.rooms.lock().unwrap().get(&key).is_some_and(|(handle, _)| !handle.tx.is_closed())
    }

    /// Opens room `room` of `game` if it is not open (it resumes from the store, claiming it first in a
    /// fleet); true if it was started now. `Err` says why rooms are not served, or that the game is not
    /// loaded here.
    pub fn open_room(&self, game: &str, room: &str) -> Result<bool, String> {
        let entry = self.game(game).ok_or_else(|| format!("game {game} is not loaded on this host"))?;
        if self.is_open(game, room) {
            return Ok(false);
        }
        self.get_or_create(game, room, &entry).map_err(|e| e.to_string())?;
        Ok(true)
    }

    /// In a fleet, where room `room` of `game` is to run, if it is not open here: `Err(Elsewhere)` when
    /// on another host (its live owner's, or the least-loaded live host's that has the game, where the
    /// room is placed now). A room whose owner died is placed anew: that is how a join takes it over.
    pub(super) async fn place(&self, game: &str, room: &str) -> Result<(), JoinError> {
        use crate::storage::placement::Placed;
        let Some(owner) = self.0.service.owner() else { return Ok(()) };
        if self.is_open(game, room) {
            return Ok(());
        }
        // A store that does not answer (cut off) must not hold the player's join for long.
        let placed =
            tokio::time::timeout(std::time::Duration::from_secs(3), owner.store.place_room(game, room, &owner.host, owner.incarnation))
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within 3 s")));
        match placed {
            Ok(Placed::Here) => Ok(()),
            Ok(Placed::There { host, addresses }) => {
                Err(JoinError::Elsewhere { game: game.to_string(), room: room.to_string(), host, address: addresses })
            }
            Err(e) => {
                tracing::error!(game, room, "failed to place the room in the fleet: {e:#}");
                Err(JoinError::NotServing(format!("the fleet could not say where room {room} runs (the host's log says why)")))
            }
        }
    }
}
