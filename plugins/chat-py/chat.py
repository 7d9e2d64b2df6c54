"""``chat-py``: room chat with nicknames, the Rust ``chat`` plugin in Python. The last messages (50 by
default) are replayed to every joiner; each player may send a bounded number of lines per window of
game time; the operator's feature switch ``chat`` turns sending on and off (joins and history keep
working while it is off)."""

import unicodedata
from dataclasses import dataclass, field

from warden_sdk import Game, Recipient, message


@dataclass
class ChatConfig:
    """Operator configuration (``[plugins.chat-py.config]`` in warden.toml)."""

    history: int = 50
    rate_lines: int = 5
    rate_window_ms: int = 5_000
    max_line_chars: int = 500


# What players send.
@message
class Nick:
    name: str


@message
class Say:
    text: str


@dataclass
class Line:
    """One chat line."""

    # `from` is a Python keyword: the field is `from_` here and `from` on the wire (see `line_out`).
    from_: str
    nick: str
    text: str
    at_ms: int


# What players receive (the same messages as the Rust chat's).
@message
class History:
    lines: list


@message
class Renamed:
    player: str
    nick: str


@message
class Refused:
    reason: str


def line_out(line: Line) -> dict:
    return {"type": "line", "from": line.from_, "nick": line.nick, "text": line.text, "at_ms": line.at_ms}


def wire_line(line: Line) -> dict:
    return {"from": line.from_, "nick": line.nick, "text": line.text, "at_ms": line.at_ms}


@dataclass
class Chat(Game):
    inbound = (Nick, Say)

    config: ChatConfig = field(default_factory=ChatConfig)
    nicks: dict[str, str] = field(default_factory=dict)
    history: list[Line] = field(default_factory=list)
    # Game times of each player's recent lines, for the rate limit.
    recent: dict[str, list[int]] = field(default_factory=dict)

    def nick(self, player: str) -> str:
        return self.nicks.get(player, player)

    def init(self, ctx, room, config):
        self.config = config.parse(ChatConfig)

    def on_join(self, ctx, player):
        ctx.send(player, History(lines=[wire_line(line) for line in self.history]))

    def on_leave(self, ctx, player):
        self.nicks.pop(player, None)
        self.recent.pop(player, None)

    def on_message(self, ctx, player, msg):
        if isinstance(msg, Say):
            self.say(ctx, player, msg.text)
        elif isinstance(msg, Nick):
            name = msg.name.strip()
            if not 1 <= len(name) <= 24 or any(unicodedata.category(c) == "Cc" for c in name):
                ctx.send(player, Refused("a nickname must have 1 to 24 characters and no control characters"))
            else:
                self.nicks[player] = name
                # print() goes to the server's log, with the plugin, room and tick attached.
                print(f"{player} is now known as {name}")
                ctx.send(Recipient.all(), Renamed(player=player, nick=name))

    def say(self, ctx, player, text):
        if not ctx.feature_enabled("chat"):
            return ctx.send(player, Refused("chat is switched off in this room right now"))
        text = text.strip()
        if not text or len(text) > self.config.max_line_chars:
            return ctx.send(player, Refused(f"a line must have 1 to {self.config.max_line_chars} characters"))
        now, window = ctx.now_ms(), self.config.rate_window_ms
        recent = [t for t in self.recent.get(player, []) if t + window > now]
        if len(recent) >= self.config.rate_lines:
            self.recent[player] = recent
            return ctx.send(player, Refused(f"slow down: at most {self.config.rate_lines} lines per {window // 1000} s"))
        recent.append(now)
        self.recent[player] = recent
        line = Line(from_=player, nick=self.nick(player), text=text, at_ms=now)
        self.history.append(line)
        del self.history[: max(0, len(self.history) - self.config.history)]
        ctx.broadcast(line_out(line))
