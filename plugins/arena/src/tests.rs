use super::*;
use warden_sdk::testing::Harness;

fn mv(dir: Dir, seq: u64) -> ArenaIn {
    ArenaIn::Move { dir, seq }
}

/// Walks `player` onto `target`, one cell at a time.
fn walk_to(r: &mut Harness<Arena>, player: &str, target: Pos) -> Vec<ArenaOut> {
    let mut seq = 0;
    while let Some(dir) = r.game().players[player].pos.dir_towards(target) {
        seq += 1;
        r.message(player, &mv(dir, seq)).unwrap();
    }
    r.received(player)
}

#[test]
fn join_places_the_player_and_welcomes_it() {
    let mut r = Harness::<Arena>::new();
    r.join("p").unwrap();
    let got = r.received::<ArenaOut>("p");
    let ArenaOut::Welcome { pos, total: 0, width: 16, height: 16 } = got[0] else { panic!("{got:?}") };
    assert_eq!(r.game().players["p"].pos, pos);
}

#[test]
fn moves_are_answered_with_their_seq_and_clamped_at_the_edge() {
    let mut r = Harness::<Arena>::new();
    r.join("p").unwrap();
    r.received::<ArenaOut>("p");
    for seq in 1..=20 {
        r.message("p", &mv(Dir::Left, seq)).unwrap();
    }
    let got = r.received::<ArenaOut>("p");
    assert_eq!(got.len(), 20);
    let ArenaOut::Moved { seq: 20, pos, .. } = got[19] else { panic!("{:?}", got[19]) };
    assert_eq!(pos.x, 0, "twenty steps left from a 16-wide grid end at the edge");
}

#[test]
fn coins_spawn_deterministically_from_the_room_seed() {
    let run = || {
        let mut r = Harness::<Arena>::new();
        r.join("p").unwrap();
        r.ticks(100).unwrap();
        r.game().coins.clone()
    };
    let coins = run();
    assert_eq!(coins.len(), 5, "one coin every 20 ticks for 100 ticks");
    assert_eq!(coins, run(), "same seed, same inputs, same coins");
}

#[test]
fn picking_a_coin_scores_and_saves() {
    let mut r = Harness::<Arena>::new();
    r.join("p").unwrap();
    r.ticks(20).unwrap();
    let coin = r.game().coins[0];
    let got = walk_to(&mut r, "p", coin);
    assert!(got.iter().any(|m| matches!(m, ArenaOut::Moved { picked: true, score: 1, .. })) || r.game().players["p"].score == 1);
    assert_eq!(r.game().players["p"].score, 1);
    assert!(!r.game().coins.contains(&coin));
    let (bytes, priority) = r.host().saves["p"].clone();
    assert_eq!(warden_sdk::decode::<Save>(&bytes).unwrap(), Save { total: 1 });
    assert_eq!(priority, Priority::Normal);
    // The lifetime total comes back from the save in a later room.
    let saves = r.host().saves.clone();
    let mut later = Harness::<Arena>::new();
    later.host().saves = saves;
    later.join("p").unwrap();
    assert!(matches!(later.received::<ArenaOut>("p")[0], ArenaOut::Welcome { total: 1, .. }));
}

#[test]
fn state_is_broadcast_every_other_tick() {
    let mut r = Harness::<Arena>::new();
    r.join("a").unwrap();
    r.join("b").unwrap();
    r.received::<ArenaOut>("a");
    r.ticks(4).unwrap();
    let states: Vec<_> = r.received::<ArenaOut>("b").into_iter().filter(|m| matches!(m, ArenaOut::State { .. })).collect();
    assert_eq!(states.len(), 2);
    let ArenaOut::State { tick: 4, players, .. } = &states[1] else { panic!() };
    assert_eq!(players.len(), 2);
}

#[test]
fn the_whole_room_survives_snapshot_and_restore() {
    let mut r = Harness::<Arena>::new();
    r.join("a").unwrap();
    r.join("b").unwrap();
    r.ticks(60).unwrap();
    let coin = r.game().coins[0];
    walk_to(&mut r, "a", coin);
    let mut copy = r.round_trip();
    assert_eq!(copy.game(), r.game());
    // And both go on identically: same random stream position, same coins.
    r.ticks(40).unwrap();
    copy.ticks(40).unwrap();
    assert_eq!(copy.game(), r.game());
}

#[test]
fn a_bad_configuration_is_refused_with_the_fix() {
    let result = std::panic::catch_unwind(|| Harness::<Arena>::with_config(&ArenaConfig { width: 0, ..ArenaConfig::default() }, &[]));
    let err = result.err().and_then(|e| e.downcast::<String>().ok()).expect("init fails");
    assert!(err.contains("width, height"), "{err}");
}

#[test]
fn dir_towards_walks_columns_first_and_stops_on_target() {
    let at = |x, y| Pos { x, y };
    assert_eq!(at(1, 1).dir_towards(at(3, 0)), Some(Dir::Right));
    assert_eq!(at(3, 1).dir_towards(at(3, 0)), Some(Dir::Up));
    assert_eq!(at(3, 0).dir_towards(at(3, 2)), Some(Dir::Down));
    assert_eq!(at(4, 9).dir_towards(at(0, 9)), Some(Dir::Left));
    assert_eq!(at(3, 0).dir_towards(at(3, 0)), None);
}

#[test]
fn a_v1_snapshot_restores_into_v2_with_the_renamed_and_the_new_field() {
    // A room state as arena 0.1 wrote it: players with `total`, no `moves`.
    let mut players = BTreeMap::new();
    players.insert("ann".to_string(), v1::Player { pos: Pos { x: 3, y: 4 }, score: 5, total: 42 });
    players.insert("bob".to_string(), v1::Player { pos: Pos { x: 0, y: 0 }, score: 0, total: 7 });
    let coins = vec![Pos { x: 1, y: 1 }, Pos { x: 9, y: 2 }];
    let old = v1::Arena { config: ArenaConfig::default(), players, coins: coins.clone() };
    let bytes = warden_sdk::encode(&old).unwrap();

    let v2 = Harness::<Arena>::restore_from("0.1.0", &bytes).unwrap();
    assert_eq!(v2.players["ann"], Player { pos: Pos { x: 3, y: 4 }, score: 5, lifetime: 42, moves: 0, last_seq: 0 });
    assert_eq!(v2.players["bob"].lifetime, 7);
    assert_eq!(v2.coins, coins);
    assert_eq!(v2.config, ArenaConfig::default());

    // Format 1 does not decode as format 2: without the migration the restore would fail.
    assert!(warden_sdk::decode::<Arena>(&bytes).is_err(), "the rename is a breaking change");
    // A snapshot of a later version decodes as it is.
    let again = Harness::<Arena>::restore_from("0.3.0", &warden_sdk::encode(&v2).unwrap()).unwrap();
    assert_eq!(again, v2);
    assert!(Harness::<Arena>::restore_from("0.3.0", &bytes).is_err(), "a format-1 state claiming a later version is refused");
}

#[test]
fn a_resent_move_is_answered_again_but_applied_once() {
    let mut r = Harness::<Arena>::new();
    r.join("p").unwrap();
    r.received::<ArenaOut>("p");
    r.message("p", &mv(Dir::Right, 1)).unwrap();
    r.message("p", &mv(Dir::Right, 2)).unwrap();
    let before = r.game().players["p"].clone();
    // The client lost the connection before the answer to 2 arrived, and sends it again.
    r.message("p", &mv(Dir::Right, 2)).unwrap();
    assert_eq!(r.game().players["p"], before, "a move is applied once");
    let got = r.received::<ArenaOut>("p");
    let ArenaOut::Moved { seq: 2, pos, .. } = got[2] else { panic!("{got:?}") };
    assert_eq!((got.len(), pos), (3, before.pos), "and answered each time");
    r.message("p", &mv(Dir::Right, 3)).unwrap();
    assert_eq!(r.game().players["p"].moves, 3);
}

#[test]
fn a_player_who_rejoins_carries_on_where_they_were_and_departed_players_are_bounded() {
    let mut r = Harness::<Arena>::new();
    r.join("p").unwrap();
    for seq in 1..=3 {
        r.message("p", &mv(Dir::Down, seq)).unwrap();
    }
    let before = r.game().players["p"].clone();
    r.leave("p").unwrap();
    assert!(!r.game().players.contains_key("p"));
    r.received::<ArenaOut>("p");
    r.join("p").unwrap();
    assert_eq!(r.game().players["p"], before, "position, score, moves and the last seq come back");
    let got = r.received::<ArenaOut>("p");
    assert!(matches!(got[0], ArenaOut::Welcome { pos, .. } if pos == before.pos), "{got:?}");
    for i in 0..DEPARTED_KEPT + 10 {
        let id = format!("x{i}");
        r.join(&id).unwrap();
        r.leave(&id).unwrap();
    }
    assert_eq!(r.game().departed.len(), DEPARTED_KEPT, "a room remembers a bounded number of departed players");
    assert_eq!(r.game().departed.last().unwrap().0, format!("x{}", DEPARTED_KEPT + 9));
}
