use super::*;
use warden_sdk::testing::Harness;

fn room() -> Harness<Chat> {
    Harness::with_config(&ChatConfig::default(), &["chat"])
}

fn say(text: &str) -> ChatIn {
    ChatIn::Say { text: text.into() }
}

fn lines(msgs: Vec<ChatOut>) -> Vec<String> {
    msgs.into_iter()
        .filter_map(|m| match m {
            ChatOut::Line(l) => Some(format!("{}: {}", l.nick, l.text)),
            _ => None,
        })
        .collect()
}

#[test]
fn lines_reach_every_member_in_order() {
    let mut r = room();
    r.join("a").unwrap();
    r.join("b").unwrap();
    r.received::<ChatOut>("a");
    r.received::<ChatOut>("b");
    r.message("a", &ChatIn::Nick { name: "Ann".into() }).unwrap();
    r.message("a", &say("one")).unwrap();
    r.message("b", &say("two")).unwrap();
    let want = vec!["Ann: one".to_string(), "b: two".to_string()];
    assert_eq!(lines(r.received("a")), want);
    assert_eq!(lines(r.received("b")), want);
}

#[test]
fn joiners_get_the_last_fifty_lines() {
    let mut r = Harness::<Chat>::with_config(&ChatConfig { rate_lines: 1000, ..ChatConfig::default() }, &["chat"]);
    r.join("a").unwrap();
    for i in 0..60 {
        r.message("a", &say(&format!("line {i}"))).unwrap();
    }
    r.join("late").unwrap();
    let got = r.received::<ChatOut>("late");
    let ChatOut::History { lines } = &got[0] else { panic!("first message to a joiner is the history: {got:?}") };
    assert_eq!(lines.len(), 50);
    assert_eq!(lines[0].text, "line 10");
    assert_eq!(lines[49].text, "line 59");
}

#[test]
fn rate_limit_refuses_past_the_window_budget_and_recovers() {
    let mut r = room();
    r.join("a").unwrap();
    r.received::<ChatOut>("a");
    for i in 0..6 {
        r.message("a", &say(&format!("{i}"))).unwrap();
    }
    let got = r.received::<ChatOut>("a");
    assert_eq!(lines(got.clone()).len(), 5);
    assert!(matches!(got.last(), Some(ChatOut::Refused { reason }) if reason.contains("slow down")));
    // 5 s of game time later (20 Hz) the budget is back.
    r.ticks(100).unwrap();
    r.message("a", &say("again")).unwrap();
    assert_eq!(lines(r.received("a")), vec!["a: again".to_string()]);
}

#[test]
fn the_chat_switch_turns_sending_off() {
    let mut r = Harness::<Chat>::with_config(&ChatConfig::default(), &[]);
    r.join("a").unwrap();
    r.received::<ChatOut>("a");
    r.message("a", &say("hi")).unwrap();
    let got = r.received::<ChatOut>("a");
    assert!(matches!(&got[..], [ChatOut::Refused { reason }] if reason.contains("switched off")), "{got:?}");
    r.host().features.insert("chat".into());
    r.message("a", &say("hi")).unwrap();
    assert_eq!(lines(r.received("a")), vec!["a: hi".to_string()]);
}

#[test]
fn bad_nicknames_and_messages_are_refused() {
    let mut r = room();
    r.join("a").unwrap();
    r.received::<ChatOut>("a");
    r.message("a", &ChatIn::Nick { name: "x".repeat(25) }).unwrap();
    assert!(matches!(&r.received::<ChatOut>("a")[..], [ChatOut::Refused { .. }]));
    let err = r.message_raw("a", b"\xc1").unwrap_err();
    assert!(err.contains("message from a"), "{err}");
}

#[test]
fn state_survives_snapshot_and_restore() {
    let mut r = room();
    r.join("a").unwrap();
    r.message("a", &ChatIn::Nick { name: "Ann".into() }).unwrap();
    r.message("a", &say("kept")).unwrap();
    let copy = r.round_trip();
    assert_eq!(copy.game(), r.game());
    assert_eq!(copy.game().nick("a"), "Ann");
}
