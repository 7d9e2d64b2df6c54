"""The component's side: the host's imports as a :class:`HostApi`, and the ``WitWorld`` class
componentize-py exports. Imported only inside a component (it needs the generated ``wit_world``)."""

import random
import sys
import traceback

from componentize_py_types import Err
from wit_world.imports import clock, messaging, saves, telemetry, types
from wit_world.imports import random as host_random

from .ctx import Ctx, Level, Priority, RoomRandom
from .game import Driver, GameError

_LEVELS = {
    Level.TRACE: types.LogLevel.TRACE,
    Level.DEBUG: types.LogLevel.DEBUG,
    Level.INFO: types.LogLevel.INFO,
    Level.WARN: types.LogLevel.WARN,
    Level.ERROR: types.LogLevel.ERROR,
}


class WasmHost:
    """The host, through the component's imports."""

    def send(self, to, payload):
        if to.kind == "player":
            recipient = types.Recipient_Player(to.player)
        elif to.kind == "all":
            recipient = types.Recipient_All()
        else:
            recipient = types.Recipient_AllExcept(to.player)
        messaging.send(recipient, payload)

    def kick(self, player, reason):
        messaging.kick(player, reason)

    def now_ms(self):
        return clock.now_ms()

    def tick(self):
        return clock.tick()

    def set_timer(self, after_ms, tag):
        clock.set_timer(after_ms, tag)

    def random(self):
        return host_random.next()

    def load_save(self, player):
        return saves.load_save(player)

    def store_save(self, player, data, priority):
        saves.store_save(player, data, types.SavePriority.CRITICAL if priority == Priority.CRITICAL else types.SavePriority.NORMAL)

    def log(self, level, message):
        telemetry.log(_LEVELS[Level(level)], message)

    def metric(self, name, value):
        telemetry.metric(name, value)

    def feature_enabled(self, name):
        return telemetry.feature_enabled(name)


class _LogStream:
    """``sys.stdout`` and ``sys.stderr`` inside a component: whole lines go to the host's log (with the
    room's context), at ``level``."""

    def __init__(self, host, level):
        self._host, self._level, self._partial = host, level, ""

    def write(self, text):
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._host.log(self._level, line)
        return len(text)

    def flush(self):
        if self._partial:
            self._host.log(self._level, self._partial)
            self._partial = ""

    def isatty(self):
        return False


def _err(host, e: BaseException) -> Err:
    """An exception as the ``err`` string the host counts and hands the player: a :class:`GameError`'s
    message as it is; any other exception (a bug) as its type and message, with its traceback written
    to the server's log, never to the player."""
    if isinstance(e, GameError):
        return Err(str(e))
    # One log line (the host attaches plugin, room and tick to each): the traceback's lines joined.
    lines = "".join(traceback.format_exception(e)).strip().splitlines()
    host.log(Level.ERROR, " | ".join(line.strip() for line in lines))
    return Err(f"{type(e).__name__}: {e}")


def export_game(game_class):
    """The ``WitWorld`` class for ``game_class``: every export runs the game through a :class:`Driver`,
    turns any exception into an ``err`` and flushes what the game printed."""
    from warden_plugin_meta import VERSION  # written by warden_sdk.build

    host = WasmHost()
    ctx = Ctx(host)
    driver = Driver(game_class, VERSION)
    sys.stdout = _LogStream(host, Level.INFO)
    sys.stderr = _LogStream(host, Level.WARN)
    # `random.random()` and the rest of the module's functions draw from the room's stream too, so a
    # replayed room draws the same numbers (CPython's own generator's state is in no snapshot).
    shared = RoomRandom(host)
    for name in ("random", "uniform", "triangular", "randint", "choice", "randrange", "sample", "shuffle", "choices",
                 "normalvariate", "lognormvariate", "expovariate", "vonmisesvariate", "gammavariate", "gauss",
                 "betavariate", "paretovariate", "weibullvariate", "getrandbits", "randbytes", "binomialvariate"):
        if hasattr(random, name):
            setattr(random, name, getattr(shared, name))

    def run(call, *args):
        try:
            return call(ctx, *args)
        except Exception as e:
            raise _err(host, e) from None
        finally:
            sys.stdout.flush()
            sys.stderr.flush()

    class WitWorld:
        def init(self, room, config):
            run(driver.init, room, config)

        def on_join(self, player):
            run(driver.on_join, player)

        def on_leave(self, player):
            run(driver.on_leave, player)

        def on_message(self, player, payload):
            run(driver.on_message, player, payload)

        def on_tick(self, tick, dt_ms):
            run(driver.on_tick, tick, dt_ms)

        def on_timer(self, tag):
            run(driver.on_timer, tag)

        def snapshot(self):
            return run(lambda _ctx: driver.snapshot())

        def restore(self, state, from_version):
            run(lambda _ctx: driver.restore(state, from_version))

    return WitWorld
