"""chat-py natively, through the SDK's harness (the same cases as the Rust chat's tests)."""

from chat import Chat, ChatConfig, Nick, Say
from warden_sdk.testing import Harness


def room(**config):
    return Harness(Chat, config=ChatConfig(**config), features=["chat"])


def lines(msgs):
    return [f"{m['nick']}: {m['text']}" for m in msgs if m["type"] == "line"]


def test_lines_reach_every_member_in_order():
    r = room()
    r.join("a")
    r.join("b")
    r.received("a"), r.received("b")
    r.message("a", Say("hello"))
    r.message("b", Say("hi a"))
    assert lines(r.received("a")) == ["a: hello", "b: hi a"]
    assert lines(r.received("b")) == ["a: hello", "b: hi a"]


def test_a_joiner_gets_the_history_and_nicknames_show():
    r = room(history=2)
    r.join("a")
    r.message("a", Nick("alice"))
    for text in ["one", "two", "three"]:
        r.message("a", Say(text))
    r.join("b")
    [history] = r.received("b")
    assert history["type"] == "history"
    assert [(line["from"], line["nick"], line["text"]) for line in history["lines"]] == [("a", "alice", "two"), ("a", "alice", "three")]


def test_the_rate_limit_refuses_and_lifts_with_game_time():
    r = room(rate_lines=2, rate_window_ms=1_000)
    r.join("a")
    r.received("a")
    for text in ["1", "2", "3"]:
        r.message("a", Say(text))
    got = r.received("a")
    assert lines(got) == ["a: 1", "a: 2"]
    assert got[-1] == {"type": "refused", "reason": "slow down: at most 2 lines per 1 s"}
    r.ticks(20)  # one second of game time at 20 Hz
    r.message("a", Say("4"))
    assert lines(r.received("a")) == ["a: 4"]


def test_the_chat_switch_turns_sending_off_and_history_still_works():
    r = room()
    r.join("a")
    r.message("a", Say("before"))
    r.host.features.discard("chat")
    r.message("a", Say("after"))
    assert r.received("a")[-1] == {"type": "refused", "reason": "chat is switched off in this room right now"}
    r.join("b")
    assert [line["text"] for line in r.received("b")[0]["lines"]] == ["before"]


def test_bad_nicknames_and_unknown_messages_are_refused():
    r = room()
    r.join("a")
    r.received("a")
    r.message("a", Nick("x" * 25))
    r.message("a", Nick("bell\x07"))
    assert [m["type"] for m in r.received("a")] == ["refused", "refused"]
    try:
        r.message("a", {"type": "shout", "text": "hi"})
        raise AssertionError("an unknown message type is an error")
    except Exception as e:
        assert "type 'shout' is not one of nick, say" in str(e)


def test_the_state_survives_a_snapshot_round_trip():
    r = room(history=3)
    r.join("a")
    r.message("a", Nick("alice"))
    r.message("a", Say("kept"))
    again = r.round_trip()
    assert again.game == r.game
    assert again.snapshot() == r.snapshot()
    again.join("b")
    assert again.received("b")[0]["lines"][0]["nick"] == "alice"
