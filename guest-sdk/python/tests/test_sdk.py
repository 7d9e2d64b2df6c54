"""The Python SDK natively: messages, state, the random stream, timers and the harness."""

from dataclasses import dataclass, field

import pytest

from warden_sdk import Game, GameError, Recipient, decode, encode, message
from warden_sdk.testing import Harness, RoomInfo, random_at


def test_the_random_stream_is_splitmix64_as_the_host_draws_it():
    # SplitMix64's published first outputs for state 0: the host's random_at(seed, n) is the n-th of them.
    assert [random_at(0, n) for n in range(3)] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]


@message
class MoveTo:
    x: int
    y: int


@dataclass
class Point:
    x: int
    y: int


def test_a_typed_message_travels_as_a_tagged_map():
    assert decode(encode(MoveTo(1, 2))) == {"type": "move_to", "x": 1, "y": 2}
    with pytest.raises(GameError):
        decode(b"\xc1")


@dataclass
class Walker(Game):
    inbound = (MoveTo,)

    at: Point = field(default_factory=lambda: Point(0, 0))
    trail: list[Point] = field(default_factory=list)
    rolls: list[int] = field(default_factory=list)
    fired: list[str] = field(default_factory=list)

    def on_message(self, ctx, player, msg):
        self.trail.append(self.at)
        self.at = Point(msg.x, msg.y)
        ctx.send(player, {"at": [msg.x, msg.y]})

    def on_join(self, ctx, player):
        self.rolls.append(ctx.random_below(6))
        self.rolls.append(ctx.rng.randrange(100))
        ctx.set_timer(100, "b")
        ctx.set_timer(50, "a")
        ctx.set_timer(100, "c")
        ctx.send(Recipient.all_except(player), {"joined": player})

    def on_timer(self, ctx, tag):
        self.fired.append(f"{tag}@{ctx.now_ms()}")


def test_messages_are_decoded_as_their_type_and_unknown_fields_are_ignored():
    r = Harness(Walker)
    r.join("p")
    r.message("p", {"type": "move_to", "x": 3, "y": 4, "speed": 9})
    assert r.game.at == Point(3, 4)
    assert r.received("p") == [{"at": [3, 4]}]
    with pytest.raises(GameError, match="type 'jump' is not one of move_to"):
        r.message("p", {"type": "jump"})
    with pytest.raises(GameError, match="missing 1 required positional argument: 'y'"):
        r.message("p", {"type": "move_to", "x": 1})


def test_sends_reach_whom_they_name():
    r = Harness(Walker)
    r.join("a")
    r.join("b")
    assert r.received("a") == [{"joined": "b"}]
    assert r.received("b") == []


def test_timers_fire_in_due_order_then_set_order_on_the_game_clock():
    r = Harness(Walker, room=RoomInfo(tick_hz=20))
    r.join("p")
    r.tick()
    assert r.game.fired == ["a@50"]
    r.tick()
    assert r.game.fired == ["a@50", "b@100", "c@100"]
    # All due on one tick (5 Hz: 200 ms a tick): in the order they were due, then set, as the host does.
    slow = Harness(Walker, room=RoomInfo(tick_hz=5))
    slow.join("p")
    slow.tick()
    assert slow.game.fired == ["a@200", "b@200", "c@200"]


def test_the_state_round_trips_with_its_types_and_the_random_stream_goes_on():
    r = Harness(Walker)
    r.join("p")
    r.message("p", MoveTo(1, 1))
    r.message("p", MoveTo(2, 5))
    again = r.round_trip()
    assert again.game == r.game
    assert isinstance(again.game.trail[1], Point)
    r.join("q")
    again.join("q")
    assert again.game.rolls == r.game.rolls, "the same stream position after the round trip"


def test_the_rooms_random_stream_cannot_be_reseeded_or_saved_by_the_plugin():
    r = Harness(Walker)
    from warden_sdk.ctx import Ctx

    ctx = Ctx(r.host)
    with pytest.raises(GameError, match="cannot be re-seeded"):
        ctx.rng.seed(7)
    with pytest.raises(GameError):
        ctx.rng.getstate()
    before = r.host.draws
    assert 0.0 <= ctx.rng.random() < 1.0
    assert r.host.draws == before + 1
    with pytest.raises(ValueError):
        ctx.random_below(0)


@dataclass
class Settings:
    speed: int = 3
    name: str = "x"


class Configured(Game):
    def init(self, ctx, room, config):
        self.settings = config.parse(Settings)


def test_configuration_parses_with_defaults_and_a_bad_one_says_where_to_look():
    assert Harness(Configured).game.settings == Settings()
    assert Harness(Configured, config={"speed": 7}).game.settings == Settings(speed=7)
    with pytest.raises(GameError, match="check this plugin's section in warden.toml"):
        Harness(Configured, config=[1, 2])


def test_migrate_from_another_version_goes_through_restore_by_default():
    state = Harness(Walker).snapshot()
    assert Harness.restore_from(Walker, "0.0.1", state) == Walker()
    with pytest.raises(GameError, match="cannot restore a snapshot of version 0.0.1"):
        Harness.restore_from(Walker, "0.0.1", encode({"at": [1, 2, 3]}))
