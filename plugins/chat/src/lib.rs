//! `chat`: room chat with nicknames. The last messages (50 by default) are replayed to every joiner; each
//! player may send a bounded number of lines per window of game time; the operator's feature switch
//! `chat` turns sending on and off (joins and history keep working while it is off).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use warden_sdk::{Config, Ctx, Game, GameResult, Recipient, RoomInfo};

/// Operator configuration (`[plugins.chat.config]` in warden.toml).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ChatConfig {
    /// How many past lines a joiner receives.
    pub history: usize,
    /// Lines a player may send per `rate_window_ms`.
    pub rate_lines: usize,
    /// Length of the rate-limit window in game milliseconds.
    pub rate_window_ms: u64,
    /// Longest accepted line, in characters.
    pub max_line_chars: usize,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig { history: 50, rate_lines: 5, rate_window_ms: 5_000, max_line_chars: 500 }
    }
}

/// What players send.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatIn {
    /// Set my nickname.
    Nick {
        /// 1 to 24 characters, no control characters.
        name: String,
    },
    /// Say something to the room.
    Say {
        /// The line.
        text: String,
    },
}

/// One chat line.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Line {
    /// Player id of the author.
    pub from: String,
    /// Nickname of the author when it was said.
    pub nick: String,
    /// The text.
    pub text: String,
    /// Game time it was said at.
    pub at_ms: u64,
}

/// What players receive.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatOut {
    /// Sent to a joiner: the recent lines, oldest first.
    History {
        /// The lines.
        lines: Vec<Line>,
    },
    /// A new line, sent to everyone (the author included, so clients see the order the room saw).
    Line(Line),
    /// Someone changed nickname.
    Renamed {
        /// Player id.
        player: String,
        /// New nickname.
        nick: String,
    },
    /// Your request was refused.
    Refused {
        /// Why, and what to do.
        reason: String,
    },
}

/// The room state.
#[derive(Default, Debug, Serialize, Deserialize, PartialEq)]
pub struct Chat {
    config: ChatConfig,
    nicks: BTreeMap<String, String>,
    history: VecDeque<Line>,
    /// Game times of each player's recent lines, for the rate limit.
    recent: BTreeMap<String, VecDeque<u64>>,
}

impl Chat {
    /// The nickname of `player` (its id until it sets one).
    pub fn nick<'a>(&'a self, player: &'a str) -> &'a str {
        self.nicks.get(player).map(String::as_str).unwrap_or(player)
    }

    fn refuse(ctx: &mut Ctx<ChatOut>, player: &str, reason: String) {
        ctx.send(player, &ChatOut::Refused { reason });
    }

    fn say(&mut self, ctx: &mut Ctx<ChatOut>, player: &str, text: String) {
        if !ctx.feature_enabled("chat") {
            return Self::refuse(ctx, player, "chat is switched off in this room right now".into());
        }
        let text = text.trim().to_string();
        if text.is_empty() || text.chars().count() > self.config.max_line_chars {
            let max = self.config.max_line_chars;
            return Self::refuse(ctx, player, format!("a line must have 1 to {max} characters"));
        }
        let now = ctx.now_ms();
        let window = self.config.rate_window_ms;
        let recent = self.recent.entry(player.to_string()).or_default();
        while recent.front().is_some_and(|&t| t + window <= now) {
            recent.pop_front();
        }
        if recent.len() >= self.config.rate_lines {
            let lines = self.config.rate_lines;
            return Self::refuse(ctx, player, format!("slow down: at most {lines} lines per {} s", window / 1000));
        }
        recent.push_back(now);
        let line = Line { from: player.to_string(), nick: self.nick(player).to_string(), text, at_ms: now };
        self.history.push_back(line.clone());
        while self.history.len() > self.config.history {
            self.history.pop_front();
        }
        ctx.broadcast(&ChatOut::Line(line));
    }
}

impl Game for Chat {
    type In = ChatIn;
    type Out = ChatOut;

    fn init(&mut self, _ctx: &mut Ctx<ChatOut>, _room: &RoomInfo, config: &Config) -> GameResult {
        self.config = config.parse()?;
        Ok(())
    }

    fn on_join(&mut self, ctx: &mut Ctx<ChatOut>, player: &str) -> GameResult {
        ctx.send(player, &ChatOut::History { lines: self.history.iter().cloned().collect() });
        Ok(())
    }

    fn on_leave(&mut self, _ctx: &mut Ctx<ChatOut>, player: &str) -> GameResult {
        self.nicks.remove(player);
        self.recent.remove(player);
        Ok(())
    }

    fn on_message(&mut self, ctx: &mut Ctx<ChatOut>, player: &str, msg: ChatIn) -> GameResult {
        match msg {
            ChatIn::Say { text } => self.say(ctx, player, text),
            ChatIn::Nick { name } => {
                let name = name.trim().to_string();
                let ok = (1..=24).contains(&name.chars().count()) && !name.chars().any(char::is_control);
                if !ok {
                    Self::refuse(ctx, player, "a nickname must have 1 to 24 characters and no control characters".into());
                } else {
                    self.nicks.insert(player.to_string(), name.clone());
                    ctx.send(Recipient::All, &ChatOut::Renamed { player: player.to_string(), nick: name });
                }
            }
        }
        Ok(())
    }
}

warden_sdk::export_game!(Chat);

#[cfg(test)]
mod tests;
