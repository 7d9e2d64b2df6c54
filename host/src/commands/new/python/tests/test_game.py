from game import Hello
from warden_sdk.testing import Harness


def test_greets_and_counts_and_keeps_the_count_across_a_swap():
    room = Harness(Hello)
    room.join("ann")
    room.message("ann", "Ann")
    room.message("ann", "Ann")
    assert room.received("ann") == ["hello, Ann (greeting #1)", "hello, Ann (greeting #2)"]
    assert room.round_trip().game.greeted == 2
