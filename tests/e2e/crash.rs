//! Crash safety with a real process: `warden saves stress` writes saves through the save queue and
//! prints each acknowledgement; it is killed with SIGKILL at pseudo-random moments, 50 times. After each
//! kill, every acknowledged save is in the database with a value at least as new, revisions never go
//! down, and (SQLite) `PRAGMA integrity_check` is ok. On SQLite and on PostgreSQL.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use warden::storage::Store;
use warden_tests::TestStore;

/// 50 in the suite; `scripts/soak-saves` raises it with WARDEN_CRASH_KILLS.
fn kills() -> u64 {
    std::env::var("WARDEN_CRASH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(50)
}
const PLAYERS: u64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_saves_survive_sigkill_on_sqlite() {
    acknowledged_saves_survive_sigkill(TestStore::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_saves_survive_sigkill_on_postgres() {
    if let Some(store) = TestStore::postgres("acknowledged_saves_survive_sigkill_on_postgres").await {
        acknowledged_saves_survive_sigkill(store).await;
    }
}

async fn acknowledged_saves_survive_sigkill(test_store: TestStore) {
    let url = test_store.url.clone();
    let mut revisions: HashMap<String, i64> = HashMap::new();
    let mut total_acks = 0;
    for kill in 0..kills() {
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
        if let Store::Sqlite(sqlite) = &store {
            assert_eq!(sqlite.integrity_check().await.unwrap(), "ok", "kill {kill}");
        }
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
    assert!(total_acks > kills() as usize, "the stress process acknowledged saves before being killed ({total_acks})");
}

/// The host itself, SIGKILLed while a player makes deposits: every deposit the player got a receipt for
/// (a receipt leaves only once its critical save is durable) is in the balance after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipted_deposits_survive_sigkill_of_the_host_on_sqlite() {
    receipted_deposits_survive_sigkill_of_the_host(TestStore::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipted_deposits_survive_sigkill_of_the_host_on_postgres() {
    if let Some(store) = TestStore::postgres("receipted_deposits_survive_sigkill_on_postgres").await {
        receipted_deposits_survive_sigkill_of_the_host(store).await;
    }
}

async fn receipted_deposits_survive_sigkill_of_the_host(store: TestStore) {
    use bank::{BankOut, Deposit};
    use warden::net::client::{self, Endpoint, Received};
    use warden::net::envelope::{ClientEnvelope, Format, ServerEnvelope};
    const HOST_KILLS: u64 = 8;
    let dir = tempfile::tempdir().unwrap();
    let token = |secret: &[u8]| warden::net::auth::mint(secret, "saver", warden::net::auth::unix_now() + 600);
    let secret = b"crash-test-secret-0123";
    let mut receipted = 0u64;
    for kill in 0..HOST_KILLS {
        let mut serve = warden_tests::Serve::start(
            dir.path(),
            &["bank"],
            &[
                "--set",
                &format!("auth.secret={:?}", std::str::from_utf8(secret).unwrap()),
                "--set",
                &format!("storage.url={:?}", store.url),
            ],
        );
        let (mut tx, mut rx) = client::connect(&Endpoint::Ws(serve.ws.clone(), Format::MsgPack)).await.unwrap();
        client::handshake(&mut tx, &mut rx, Some(token(secret)), "bank", "vault").await.unwrap();
        let balance = loop {
            if let Received::Envelope(ServerEnvelope::Msg { data }) = rx.recv_within(Duration::from_secs(60)).await.unwrap() {
                match rmp_serde::from_slice::<BankOut>(&data).unwrap() {
                    BankOut::Balance { balance } => break balance,
                    other => panic!("{other:?}"),
                }
            }
        };
        assert!(balance >= receipted, "kill {kill}: the balance {balance} lost receipted deposits (receipted up to {receipted})");
        receipted = balance;
        // Deposit as fast as receipts come back, and kill the host at a different moment each time.
        let until = Instant::now() + Duration::from_millis(150 + (kill * 7919) % 250);
        while Instant::now() < until {
            let data = rmp_serde::to_vec_named(&Deposit { amount: 1 }).unwrap();
            tx.send(&ClientEnvelope::Msg { data }).await.unwrap();
            if let Received::Envelope(ServerEnvelope::Msg { data }) = rx.recv_within(Duration::from_secs(60)).await.unwrap()
                && let BankOut::Receipt { balance } = rmp_serde::from_slice::<BankOut>(&data).unwrap()
            {
                receipted = receipted.max(balance);
            }
        }
        serve.kill();
    }
    assert!(receipted >= HOST_KILLS, "deposits were made and receipted ({receipted})");
}
