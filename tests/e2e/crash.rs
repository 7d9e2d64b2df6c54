//! Crash safety with a real process: `warden saves stress` writes saves through the save queue and
//! prints each acknowledgement; it is killed with SIGKILL at pseudo-random moments, 50 times. After each
//! kill, every acknowledged save is in the database with a value at least as new, revisions never go
//! down, and `PRAGMA integrity_check` is ok.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use warden::storage::Store;

const KILLS: u64 = 50;
const PLAYERS: u64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_saves_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("crash.db").display());
    let mut revisions: HashMap<String, i64> = HashMap::new();
    let mut total_acks = 0;
    for kill in 0..KILLS {
        let start_round = kill * 1_000_000 + 1;
        let mut child = Command::new(warden_tests::warden_bin())
            .args(["saves", "--set"])
            .arg(format!("storage.url={url:?}"))
            .args(["stress", "--players", &PLAYERS.to_string(), "--start-round", &start_round.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // Kill at 100..400 ms, a different moment each time.
        let after = Duration::from_millis(100 + (kill * 7919) % 300);
        let reader = std::thread::spawn(move || {
            let mut acked: HashMap<String, u64> = HashMap::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut parts = line.split_whitespace().skip(1);
                let (player, round) = (parts.next().unwrap().to_string(), parts.next().unwrap().parse::<u64>().unwrap());
                let best = acked.entry(player).or_default();
                *best = (*best).max(round);
            }
            acked
        });
        let started = Instant::now();
        while started.elapsed() < after {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let acked = reader.join().unwrap();
        total_acks += acked.len();

        let store = Store::open(&url).await.unwrap();
        let Store::Sqlite(sqlite) = &store;
        assert_eq!(sqlite.integrity_check().await.unwrap(), "ok", "kill {kill}");
        for (player, round) in &acked {
            let save = store
                .load_save("stress", player)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("kill {kill}: {player}'s acknowledged save is gone"));
            let stored: u64 = rmp_serde::from_slice(&save.data).unwrap();
            assert!(stored >= *round, "kill {kill}: {player} acknowledged round {round} but the database has {stored}");
            assert!(stored >= start_round, "kill {kill}: {player} holds a value from an earlier run");
        }
        for player in (0..PLAYERS).map(|p| format!("p{p}")) {
            if let Some(save) = store.load_save("stress", &player).await.unwrap() {
                let before = revisions.insert(player.clone(), save.revision).unwrap_or(0);
                assert!(save.revision >= before, "kill {kill}: {player}'s revision went down from {before} to {}", save.revision);
            }
        }
    }
    assert!(total_acks > KILLS as usize, "the stress process acknowledged saves before being killed ({total_acks})");
}
