"""The Game base class, typed messages and the MessagePack they travel as."""

import dataclasses
import re
import types
import typing

import msgpack


class GameError(Exception):
    """A handled gameplay error: the host counts it and the room goes on (``err`` in the WIT)."""


def message(cls):
    """Makes a dataclass a typed message: it travels as a MessagePack map with its fields and a
    ``type`` field naming it in snake_case (``class NickTaken`` is ``{"type": "nick_taken", ...}``),
    the shape the Rust SDK's ``#[serde(tag = "type", rename_all = "snake_case")]`` enums have."""
    if not dataclasses.is_dataclass(cls):
        cls = dataclasses.dataclass(cls)
    cls.__warden_tag__ = re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()
    return cls


def to_plain(value):
    """``value`` with dataclasses turned into maps (a typed message's with its ``type``), recursively."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        plain = {}
        tag = getattr(type(value), "__warden_tag__", None)
        if tag is not None:
            plain["type"] = tag
        for field in dataclasses.fields(value):
            plain[field.name] = to_plain(getattr(value, field.name))
        return plain
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    return value


def from_plain(hint, value):
    """``value`` (decoded MessagePack) as the type ``hint`` says: dataclasses from maps, lists and maps
    of them, optional values. Anything else is returned as it is."""
    if hint is None or hint is typing.Any or value is None:
        return value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        present = [a for a in args if a is not type(None)]
        return from_plain(present[0], value) if len(present) == 1 else value
    if origin in (list, tuple) and args:
        return [from_plain(args[0], v) for v in value]
    if origin is dict and len(args) == 2:
        return {k: from_plain(args[1], v) for k, v in value.items()}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise GameError(f"expected a map for {hint.__name__}, got {type(value).__name__}")
        hints = typing.get_type_hints(hint)
        known = {f.name for f in dataclasses.fields(hint)}
        fields = {k: from_plain(hints.get(k), v) for k, v in value.items() if k in known}
        try:
            return hint(**fields)
        except TypeError as e:
            raise GameError(f"{hint.__name__}: {e}") from None
    return value


def encode(value) -> bytes:
    """MessagePack bytes of ``value`` (typed messages and dataclasses as maps)."""
    return msgpack.packb(to_plain(value), use_bin_type=True)


def decode(data: bytes, hint=None):
    """Decodes MessagePack bytes, as ``hint`` if given (see :func:`from_plain`)."""
    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as e:  # msgpack's errors have several types
        raise GameError(f"not MessagePack: {e}") from None
    return from_plain(hint, value)


class Config:
    """The plugin's configuration from ``warden.toml`` (its ``[plugins.NAME.config]`` section)."""

    def __init__(self, data: bytes):
        self.bytes = data

    def parse(self, hint=None):
        """The configuration as a map, or as the dataclass ``hint`` (its defaults fill what is not set)."""
        if not self.bytes:
            return hint() if hint is not None else {}
        try:
            return decode(self.bytes, hint)
        except GameError as e:
            raise GameError(f"bad plugin configuration: {e} (check this plugin's section in warden.toml)") from None


class Game:
    """A game: one instance per room. Override the hooks you need; each gets a :class:`~warden_sdk.Ctx`.

    ``inbound`` lists the typed messages (:func:`message`) players send; a payload is decoded as the
    one its ``type`` names, and one that names none is refused with an error (the room goes on). Without
    ``inbound``, ``on_message`` gets the decoded MessagePack value as it is.

    The state is the instance's attributes: the default :meth:`snapshot` encodes them as a MessagePack
    map, and :meth:`restore` makes a new instance (``__init__`` without arguments) and sets them back,
    as the class annotations say (``history: list[Line]`` comes back as ``Line`` objects). Keep the state
    in values MessagePack can hold (no sets: use sorted lists).
    """

    inbound: typing.ClassVar[typing.Sequence[type] | None] = None

    def init(self, ctx, room, config: Config) -> None:
        """A new room: ``room`` has ``id``, ``game``, ``seed``, ``tick_hz`` and ``max_players``."""

    def on_join(self, ctx, player: str) -> None:
        """``player`` entered the room."""

    def on_leave(self, ctx, player: str) -> None:
        """``player`` left the room."""

    def on_message(self, ctx, player: str, msg) -> None:
        """``player`` sent ``msg``."""

    def on_tick(self, ctx, tick: int, dt_ms: int) -> None:
        """The game clock advanced to ``tick``."""

    def on_timer(self, ctx, tag: str) -> None:
        """A timer set with ``ctx.set_timer`` is due."""

    def snapshot(self) -> bytes:
        """The whole state as bytes (must not change it)."""
        return encode(dict(vars(self)))

    @classmethod
    def restore(cls, state: bytes):
        """A new instance holding a state that :meth:`snapshot` of this same version returned."""
        game = cls()
        hints = typing.get_type_hints(cls)
        for name, value in decode(state).items():
            setattr(game, name, from_plain(hints.get(name), value))
        return game

    @classmethod
    def migrate(cls, from_version: str, state: bytes):
        """A new instance from a snapshot of another version (``from_version``); by default the same as
        :meth:`restore`. Override it when the state's shape changed."""
        try:
            return cls.restore(state)
        except Exception as e:
            raise GameError(f"cannot restore a snapshot of version {from_version}: {e} (override Game.migrate for this change)") from None


NOT_STARTED = "the game has no state yet: the host must call init or restore first"


class Driver:
    """From raw contract calls to a :class:`Game`: the one path used by the component's exports and by
    the native harness."""

    def __init__(self, game_class, version: str):
        self.game_class = game_class
        self.version = version
        self.game = None

    def _game(self):
        if self.game is None:
            raise GameError(NOT_STARTED)
        return self.game

    def init(self, ctx, room, config: bytes):
        game = self.game_class()
        game.init(ctx, room, Config(config))
        self.game = game

    def on_join(self, ctx, player):
        self._game().on_join(ctx, player)

    def on_leave(self, ctx, player):
        self._game().on_leave(ctx, player)

    def on_message(self, ctx, player, payload: bytes):
        game = self._game()
        msg = decode_inbound(self.game_class.inbound, player, payload)
        game.on_message(ctx, player, msg)

    def on_tick(self, ctx, tick, dt_ms):
        self._game().on_tick(ctx, tick, dt_ms)

    def on_timer(self, ctx, tag):
        self._game().on_timer(ctx, tag)

    def snapshot(self) -> bytes:
        return self._game().snapshot()

    def restore(self, state: bytes, from_version: str):
        if from_version == self.version:
            self.game = self.game_class.restore(state)
        else:
            self.game = self.game_class.migrate(from_version, state)


def decode_inbound(inbound, player, payload):
    """A player's payload as the typed message its ``type`` names (or as it is, without ``inbound``)."""
    try:
        value = decode(payload)
    except GameError as e:
        raise GameError(f"message from {player} is not one this game understands: {e}") from None
    if inbound is None:
        return value
    tag = value.get("type") if isinstance(value, dict) else None
    for cls in inbound:
        if cls.__warden_tag__ == tag:
            try:
                return from_plain(cls, value)
            except GameError as e:
                raise GameError(f"message from {player} is not one this game understands: {e}") from None
    known = ", ".join(c.__warden_tag__ for c in inbound)
    raise GameError(f"message from {player} is not one this game understands: type {tag!r} is not one of {known}")
