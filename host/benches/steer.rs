//! `cargo bench -p warden --bench steer` (after scripts/build-plugins)
//!
//! The tick loop of `tick_loop.rs` (the same code, as a module) with the operator's steering in place
//! when `WARDEN_BENCH_STEER=1`: 20 feature switches on and 10 threshold rules counting what the arena
//! rooms do (messages per player, room and game, `move` messages, joins, a plugin metric), none of them
//! near its limit, so every rule counts on every move and none fires. `scripts/bench-instructions steer`
//! counts its instructions with and without, under callgrind.

#[path = "tick_loop.rs"]
mod tick_loop;

use warden::room::Switches;
use warden::rules::{Action, Per, Rule, RuleSet};

fn rule(i: usize, figure: &str, per: Per) -> Rule {
    Rule {
        name: format!("rule-{i}"),
        figure: figure.into(),
        per,
        game: None,
        window_ms: 10_000,
        limit: 1e12,
        // Kicks act on players; the rest log. None fires: the limit is out of reach.
        action: if per == Per::Player { Action::Kick } else { Action::Log },
        feature: None,
        reason: None,
    }
}

fn main() {
    let steer = std::env::var("WARDEN_BENCH_STEER").is_ok_and(|v| v == "1");
    tick_loop::run(|rooms, game| {
        if !steer {
            return;
        }
        let names: Vec<String> = (0..20).map(|i| format!("feature-{i}")).collect();
        game.set_switches(Switches::with_features(&names));
        let figures = [
            ("messages", Per::Player),
            ("messages", Per::Room),
            ("messages", Per::Game),
            ("messages:move", Per::Player),
            ("messages:move", Per::Room),
            ("messages:chat", Per::Player),
            ("metric:coins", Per::Player),
            ("metric:coins", Per::Room),
            ("joins", Per::Player),
            ("joins", Per::Game),
        ];
        let rules = figures.iter().enumerate().map(|(i, (figure, per))| rule(i, figure, *per)).collect();
        rooms.rules().replace(RuleSet::new(rules).expect("valid rules"));
        eprintln!("steering: 20 switches on, 10 rules");
    });
}
