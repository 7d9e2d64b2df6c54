"""The plugin's view of the host: :class:`Ctx` (typed) over a :class:`HostApi` (raw bytes)."""

import enum
import random as _random
import typing
from dataclasses import dataclass

from .game import GameError, decode, encode


@dataclass(frozen=True)
class Recipient:
    """Who a send goes to: one player, everyone in the room, or everyone but one player."""

    kind: str
    player: str | None = None

    @staticmethod
    def to(player: str) -> "Recipient":
        return Recipient("player", player)

    @staticmethod
    def all() -> "Recipient":
        return Recipient("all")

    @staticmethod
    def all_except(player: str) -> "Recipient":
        return Recipient("all_except", player)


class Level(enum.IntEnum):
    """A log line's severity."""

    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4


class Priority(enum.IntEnum):
    """How fast a save must become durable: ``NORMAL`` is batched, ``CRITICAL`` is written at once."""

    NORMAL = 0
    CRITICAL = 1


class HostApi(typing.Protocol):
    """What the host provides, in raw bytes: the component's imports, or the harness's in-memory host."""

    def send(self, to: Recipient, payload: bytes) -> None: ...
    def kick(self, player: str, reason: str) -> None: ...
    def now_ms(self) -> int: ...
    def tick(self) -> int: ...
    def set_timer(self, after_ms: int, tag: str) -> None: ...
    def random(self) -> int: ...
    def load_save(self, player: str) -> bytes | None: ...
    def store_save(self, player: str, data: bytes, priority: Priority) -> None: ...
    def log(self, level: Level, message: str) -> None: ...
    def metric(self, name: str, value: float) -> None: ...
    def feature_enabled(self, name: str) -> bool: ...


U64 = 1 << 64


class RoomRandom(_random.Random):
    """A :class:`random.Random` whose numbers come from the room's random stream (the host's, seeded per
    room). Its state is the host's stream, which checkpoints, swaps and replays carry, so a room that is
    replayed draws the same numbers. ``seed``, ``getstate`` and ``setstate`` are refused: the stream is
    the room's, not the plugin's."""

    def __init__(self, host: HostApi):
        self._host = None
        super().__init__(0)
        self._host = host

    def seed(self, *args, **kwargs):
        if self._host is not None:
            raise GameError("the room's random stream cannot be re-seeded: its seed is the room's (room.seed)")

    def random(self) -> float:
        return (self._host.random() >> 11) * (1.0 / (1 << 53))

    def getrandbits(self, k: int) -> int:
        if k < 0:
            raise ValueError("number of bits must be non-negative")
        bits, have = 0, 0
        while have < k:
            bits |= self._host.random() << have
            have += 64
        return bits & ((1 << k) - 1) if k else 0

    def getstate(self):
        raise GameError("the room's random stream has no state of the plugin's to take: the host keeps it")

    def setstate(self, state):
        raise GameError("the room's random stream has no state of the plugin's to set: the host keeps it")


class Ctx:
    """What a hook may do: talk to players, read the game clock, draw random numbers, set timers, load
    and store saves, kick, read feature switches, report metrics, log."""

    def __init__(self, host: HostApi):
        self._host = host
        self.rng = RoomRandom(host)
        """A :class:`random.Random` drawing from the room's stream (``ctx.rng.choice(...)``)."""

    def send(self, to: "str | Recipient", msg) -> None:
        """Sends ``msg`` (a typed message, or any MessagePack value) to a player id or a :class:`Recipient`."""
        try:
            payload = encode(msg)
        except Exception as e:
            self._host.log(Level.ERROR, f"failed to encode an outbound message: {e}")
            return
        self._host.send(Recipient.to(to) if isinstance(to, str) else to, payload)

    def broadcast(self, msg) -> None:
        """Sends ``msg`` to everyone in the room."""
        self.send(Recipient.all(), msg)

    def send_raw(self, to: "str | Recipient", payload: bytes) -> None:
        """Sends raw bytes."""
        self._host.send(Recipient.to(to) if isinstance(to, str) else to, bytes(payload))

    def kick(self, player: str, reason: str) -> None:
        """Removes ``player`` from the room at the end of the tick, telling it ``reason``."""
        self._host.kick(player, reason)

    def now_ms(self) -> int:
        """Game time in milliseconds (advances only by ticks)."""
        return self._host.now_ms()

    def tick(self) -> int:
        """The current tick's number."""
        return self._host.tick()

    def set_timer(self, after_ms: int, tag: str) -> None:
        """Asks for ``on_timer(tag)`` on the first later tick at least ``after_ms`` from now."""
        self._host.set_timer(after_ms, tag)

    def random(self) -> int:
        """64 bits from the room's deterministic random stream."""
        return self._host.random()

    def random_below(self, n: int) -> int:
        """A uniformly distributed number in ``0..n`` (the same numbers the Rust SDK's gives)."""
        if n <= 0:
            raise ValueError(f"random_below({n}): the range is empty; pass n >= 1")
        zone = (U64 - 1) - ((U64 - 1) % n)
        while True:
            r = self._host.random()
            if r < zone:
                return r % n

    def load_save(self, player: str, hint=None):
        """The newest save of ``player``, decoded (as ``hint`` if given); ``None`` if there is none."""
        data = self._host.load_save(player)
        if data is None:
            return None
        try:
            return decode(data, hint)
        except GameError as e:
            raise GameError(f"the save of {player} does not decode: {e}") from None

    def store_save(self, player: str, save, priority: Priority = Priority.NORMAL) -> None:
        """Stores ``save`` as the newest save of ``player``."""
        self._host.store_save(player, encode(save), priority)

    def feature_enabled(self, name: str) -> bool:
        """Whether the operator switched the runtime feature ``name`` on."""
        return self._host.feature_enabled(name)

    def metric(self, name: str, value: float) -> None:
        """Records a gauge value."""
        self._host.metric(name, float(value))

    def log(self, level: Level, message: str) -> None:
        """Writes a log line (the host adds plugin, version, room and tick)."""
        self._host.log(level, message)

    def info(self, message: str) -> None:
        self.log(Level.INFO, message)

    def warn(self, message: str) -> None:
        self.log(Level.WARN, message)

    def error(self, message: str) -> None:
        self.log(Level.ERROR, message)

    def debug(self, message: str) -> None:
        self.log(Level.DEBUG, message)
