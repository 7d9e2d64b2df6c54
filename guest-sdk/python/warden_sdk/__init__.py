"""Warden game plugins in Python.

A plugin is a subclass of :class:`Game` with hooks that receive a :class:`Ctx`, the plugin's view of
the host (sends, game time, the room's random stream, timers, saves, kicks, features, metrics, logs).
Messages travel as MessagePack; :func:`message` makes a dataclass a typed message. The plugin's
``app.py`` ends with ``WitWorld = export_game(MyGame)``, and ``python -m warden_sdk.build DIR`` turns
the directory into a Warden component. :mod:`warden_sdk.testing` runs a game natively under pytest.
"""

from .ctx import Ctx, HostApi, Level, Priority, Recipient
from .game import Config, Game, GameError, decode, encode, message

__all__ = [
    "Config",
    "Ctx",
    "Game",
    "GameError",
    "HostApi",
    "Level",
    "Priority",
    "Recipient",
    "decode",
    "encode",
    "export_game",
    "message",
]

SDK_VERSION = "0.1.0"


def export_game(game_class):
    """The ``WitWorld`` class componentize-py exports for ``game_class`` (only inside a component)."""
    from .export import export_game as export

    return export(game_class)
