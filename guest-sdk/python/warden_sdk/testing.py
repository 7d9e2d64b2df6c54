"""Run a game natively, as the host would, under pytest: no wasm, the same hooks in the same order, the
same random stream (SplitMix64 over seed and draw count, as the host and the Rust SDK's harness)."""

import copy
from dataclasses import dataclass, field

from .ctx import Ctx, Level, Priority, Recipient
from .game import Driver, decode, encode

MASK = (1 << 64) - 1


def random_at(seed: int, draw: int) -> int:
    """The room stream's number ``draw`` (from 0) for ``seed``: the host's function."""
    z = (seed + ((draw + 1) * 0x9E3779B97F4A7C15)) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


@dataclass
class RoomInfo:
    """What the host tells a game about its room (the harness's defaults are the Rust harness's)."""

    id: str = "test-room"
    game: str = "test"
    seed: int = 42
    tick_hz: int = 20
    max_players: int = 16


@dataclass
class Sent:
    """One send, as the game addressed it."""

    to: Recipient
    payload: bytes


@dataclass
class TestHost:
    """An in-memory host: what the game sent, kicked, saved, logged, and its clock and random stream."""

    __test__ = False  # not a pytest test class

    sent: list = field(default_factory=list)
    kicked: list = field(default_factory=list)
    timers: list = field(default_factory=list)  # (due_ms, tag), in the order they were set
    saves: dict = field(default_factory=dict)  # player -> (bytes, Priority)
    logs: list = field(default_factory=list)  # (Level, message)
    metrics: dict = field(default_factory=dict)
    features: set = field(default_factory=set)
    tick_no: int = 0
    now: int = 0
    seed: int = 42
    draws: int = 0

    def send(self, to, payload):
        self.sent.append(Sent(to, bytes(payload)))

    def kick(self, player, reason):
        self.kicked.append((player, reason))

    def now_ms(self):
        return self.now

    def tick(self):
        return self.tick_no

    def set_timer(self, after_ms, tag):
        self.timers.append((self.now + after_ms, tag))

    def random(self):
        r = random_at(self.seed, self.draws)
        self.draws += 1
        return r

    def load_save(self, player):
        save = self.saves.get(player)
        return save[0] if save else None

    def store_save(self, player, data, priority):
        self.saves[player] = (bytes(data), Priority(priority))

    def log(self, level, message):
        self.logs.append((Level(level), message))

    def metric(self, name, value):
        self.metrics[name] = value

    def feature_enabled(self, name):
        return name in self.features


class Harness:
    """A room running one game natively. ``Harness(Chat, config=ChatConfig(), features=["chat"])``."""

    def __init__(self, game_class, config=None, features=(), room: RoomInfo | None = None, version: str = "0.0.0-test"):
        self.room = room or RoomInfo()
        self.host = TestHost(seed=self.room.seed, features=set(features))
        self.driver = Driver(game_class, version)
        self.members: list[str] = []
        self._log: list[Sent] = []
        self._mailboxes: dict[str, list[bytes]] = {}
        self.driver.init(Ctx(self.host), self.room, encode(config) if config is not None else b"")

    @property
    def game(self):
        """The game instance."""
        return self.driver.game

    def _run(self, call, *args):
        try:
            call(Ctx(self.host), *args)
        finally:
            self._deliver()

    def join(self, player: str):
        self.members.append(player)
        self._run(self.driver.on_join, player)

    def leave(self, player: str):
        self.members = [m for m in self.members if m != player]
        self._run(self.driver.on_leave, player)

    def message(self, player: str, msg):
        """``player`` sends ``msg``, encoded as MessagePack the way a client would."""
        self.message_raw(player, encode(msg))

    def message_raw(self, player: str, payload: bytes):
        self._run(self.driver.on_message, player, payload)

    def tick(self):
        """One tick: the clock moves one step, due timers fire in the order they were set, then ``on_tick``."""
        hz = max(self.room.tick_hz, 1)
        self.host.tick_no += 1
        self.host.now = self.host.tick_no * 1000 // hz
        # In the order they were due, then set (a stable sort keeps set order among equals), as the host.
        due = sorted((t for t in self.host.timers if t[0] <= self.host.now), key=lambda t: t[0])
        self.host.timers = [t for t in self.host.timers if t[0] > self.host.now]
        try:
            for _, tag in due:
                self.driver.on_timer(Ctx(self.host), tag)
            self.driver.on_tick(Ctx(self.host), self.host.tick_no, 1000 // hz)
        finally:
            self._deliver()

    def ticks(self, n: int):
        for _ in range(n):
            self.tick()

    def _deliver(self):
        for sent in self.host.sent:
            for member in self.members:
                to = sent.to
                if to.kind == "all" or (to.kind == "player" and to.player == member) or (to.kind == "all_except" and to.player != member):
                    self._mailboxes.setdefault(member, []).append(sent.payload)
            self._log.append(sent)
        self.host.sent = []

    def take_sent(self) -> list[Sent]:
        """Every send so far not taken yet, as the game addressed it."""
        sent, self._log = self._log, []
        return sent

    def received(self, player: str, hint=None) -> list:
        """The messages ``player`` received and the test has not read yet, decoded (as ``hint`` if given)."""
        return [decode(p, hint) for p in self._mailboxes.pop(player, [])]

    def snapshot(self) -> bytes:
        return self.driver.snapshot()

    def round_trip(self) -> "Harness":
        """A new room restored from this one's snapshot (same version), with the same host state
        (members, clock, random stream, timers, saves): what a hot swap to the same code does."""
        other = copy.copy(self)
        other.host = copy.deepcopy(self.host)
        other.host.sent, other.host.kicked, other.host.logs = [], [], []
        other.driver = Driver(self.driver.game_class, self.driver.version)
        other.driver.restore(self.snapshot(), self.driver.version)
        other.members = list(self.members)
        other._log, other._mailboxes = [], {}
        return other

    @staticmethod
    def restore_from(game_class, from_version: str, state: bytes):
        """``game_class`` restored from a snapshot of another version, through ``Game.migrate``."""
        driver = Driver(game_class, "0.0.0-test")
        driver.restore(state, from_version)
        return driver.game
