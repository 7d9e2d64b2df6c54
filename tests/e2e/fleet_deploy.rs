//! One deploy for the fleet: three real `warden serve` hosts on one PostgreSQL
//! (`WARDEN_TEST_DATABASE_URL`; skipped, and listed as skipped, without it), each with its own plugin
//! directory and the same trusted signing key.
//!
//! A signed bad version (arena's `chaos` build stamped 0.3.0: every fifth move returns `err`) is put in
//! host a's plugin directory only. Hosts b and c fetch it from the fleet's artifacts, check its hash and
//! signature themselves and serve it; every host's rooms run it. Then bots play: the rollout's leader
//! judges the version on the health windows summed across the hosts, marks it bad once, and every host
//! rolls its rooms back. Exactly one rollback is in the audit log, one host rolled back for the breach and
//! the other two followed the registry.
//!
//! And the operator's switches and threshold rules, set through one host, reach the others; a version
//! pushed to the fleet (`warden push --fleet`) is deployed by the rollout's leader and made ready by
//! every host, one that starts later included.

use tokio_util::sync::CancellationToken;
use warden::commands::bots::{self, BotGame, BotsArgs};
use warden::deploy::sign;
use warden::runtime::manifest;
use warden::storage::postgres::PgStore;
use warden::storage::{Store, VersionState};
use warden_tests::{TestStore, wasm_bytes};

mod fleet_rig;
mod shared;
use fleet_rig::{Host, live, owners, wait_for};

const SECRET: &str = "fleet-deploy-secret-0001";
const HOSTS: [&str; 3] = ["a", "b", "c"];

/// Settings over the rig's: the trusted key, every room at once on probation (only a rollback ends it
/// here), rooms that stay open for the whole test once their players left.
fn settings(public_key: &str) -> Vec<String> {
    vec![
        format!("deploy.trusted_keys=[{public_key:?}]"),
        "deploy.settle_ms=100".into(),
        "rollout.strategy=\"immediate\"".into(),
        "rollout.probation_ms=600000".into(),
        // The breach under test is the error rate summed across hosts. Debug-build call latencies on a
        // loaded machine are noise: a latency breach judged on two hosts' windows came first once.
        "health.latency_factor=0.0".into(),
        "rooms.empty_grace_ms=600000".into(),
        "fleet.heartbeat_ms=250".into(),
        "fleet.lease_ms=6000".into(),
        "fleet.lease_margin_ms=2000".into(),
    ]
}

async fn start_all(hosts: &mut [Host], url: &str, public_key: &str) -> PgStore {
    let pg = PgStore::open(url).await.unwrap();
    let sets = settings(public_key);
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    for host in hosts.iter_mut() {
        host.start(url, SECRET, &sets).await;
    }
    for host in hosts.iter() {
        wait_for(&format!("host {} is live", host.id), || live(&pg, host.id)).await;
    }
    pg
}

/// `warden bots`: `players` players in rooms of 4 named `prefix-N`, starting on each host in turn.
async fn play(hosts: &[Host], players: usize, prefix: &str, stop: &CancellationToken) -> tokio::task::JoinHandle<()> {
    let others = hosts[1..].iter().map(Host::endpoint).collect();
    let args = BotsArgs::new(BotGame::Arena, players, 4, 8.0, 600.0, prefix).fleet(others);
    let (stop, endpoint) = (stop.clone(), hosts[0].endpoint());
    tokio::spawn(async move {
        bots::drive_until(&args, endpoint, Some(SECRET.as_bytes().to_vec()), stop).await.expect("the bots ran");
    })
}

/// Puts arena's `chaos` build, stamped `version` and signed with `key` (a secret key file's text), into `host`'s plugin directory:
/// the signature first, then the file under a temp name renamed into place.
fn drop_signed(host: &Host, key: &str, version: &str) {
    let key = sign::parse_secret_key(key).unwrap();
    let bytes = wasm_bytes("arena-chaos");
    let mut m = manifest::read(&bytes).unwrap();
    m.version = version.into();
    let stamped = manifest::stamp(&bytes, &m);
    let dir = host.dir.path().join("plugins");
    let name = format!("arena-{version}.wasm");
    std::fs::write(dir.join(format!("{name}.minisig")), sign::sign(&stamped, &key, "arena", version).unwrap()).unwrap();
    std::fs::write(dir.join(format!(".{name}.tmp")), &stamped).unwrap();
    std::fs::rename(dir.join(format!(".{name}.tmp")), dir.join(name)).unwrap();
}

/// The versions the rooms of `host` run.
async fn room_versions(host: &Host) -> Vec<String> {
    host.admin().rooms().await.map(|rooms| rooms.into_iter().filter(|r| r.game == "arena").map(|r| r.version).collect()).unwrap_or_default()
}

/// The value of the sample `name` (with its labels, as exposed) on `host`'s `/metrics`, or 0.
async fn metric(host: &Host, sample: &str) -> f64 {
    let text = host.admin().metrics().await.unwrap();
    text.lines().find_map(|l| l.strip_prefix(sample).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_version_deployed_through_one_host_is_rolled_back_on_all_three_with_one_bad_mark() {
    let Some(store) = TestStore::postgres("fleet_deploy").await else { return };
    let (key, _, public_key) = sign::keygen().unwrap();
    let mut hosts: Vec<Host> = HOSTS.iter().map(|id| Host::new(id)).collect();
    let pg = start_all(&mut hosts, &store.url, &public_key).await;

    // Rooms on every host, on 0.2.0, opened one after the other so that each goes to a host with none
    // (placement picks the least-loaded host; ties go to the asking one); their players leave, and the
    // rooms stay open (and tick).
    for (i, host) in hosts.iter().enumerate() {
        let stop = CancellationToken::new();
        let args = BotsArgs::new(BotGame::Arena, 4, 4, 8.0, 600.0, &format!("idle{i}"));
        let (bots_stop, endpoint) = (stop.clone(), host.endpoint());
        let driver = tokio::spawn(async move { bots::drive_until(&args, endpoint, Some(SECRET.as_bytes().to_vec()), bots_stop).await });
        let room = format!("idle{i}-0");
        wait_for(&format!("room {room} opens on host {}", host.id), || async {
            owners(&pg).await.get(&room) == Some(&host.id.to_string())
        })
        .await;
        stop.cancel();
        driver.await.unwrap().expect("the bots ran");
    }

    // 0.3.0 goes to host a only; b and c fetch it from the fleet, verify it and serve it too.
    drop_signed(&hosts[0], &key, "0.3.0");
    for host in &hosts {
        wait_for(&format!("host {}'s rooms run 0.3.0", host.id), || async {
            let versions = room_versions(host).await;
            !versions.is_empty() && versions.iter().all(|v| v == "0.3.0")
        })
        .await;
    }
    let ready = pg.host_versions().await.unwrap();
    for id in HOSTS {
        assert!(
            ready.iter().any(|v| v.host == id && v.plugin == "arena" && v.version == "0.3.0" && v.state == "ready"),
            "host {id} reports 0.3.0 ready: {ready:?}"
        );
    }

    // Players now: its errors are summed across the hosts, and the version is rolled back everywhere.
    let stop = CancellationToken::new();
    let driver = play(&hosts, 24, "busy", &stop).await;
    let s = Store::Postgres(pg.clone());
    wait_for("0.3.0 is marked bad", || async {
        s.versions("arena").await.unwrap().iter().any(|r| r.version == "0.3.0" && r.state == VersionState::Bad)
    })
    .await;
    for host in &hosts {
        wait_for(&format!("host {}'s rooms are back on 0.2.0", host.id), || async {
            let versions = room_versions(host).await;
            !versions.is_empty() && versions.iter().all(|v| v == "0.2.0")
        })
        .await;
        // Its rooms rebuilt their state in 0.2.0 from checkpoint and journal (not a plain swap).
        assert!(metric(host, "warden_room_rollbacks_total{plugin=\"arena\"}").await >= 1.0, "host {} rolled its rooms back", host.id);
    }
    stop.cancel();
    driver.await.unwrap();

    // One bad mark, one rollback in the audit log, judged on the fleet's summed windows.
    let rollbacks: Vec<_> = s.audit_log(1000).await.unwrap().into_iter().filter(|e| e.action == "rollback").collect();
    assert_eq!(rollbacks.len(), 1, "exactly one rollback audit entry: {rollbacks:?}");
    assert_eq!(rollbacks[0].version.as_deref(), Some("0.3.0"));
    assert!(rollbacks[0].detail.contains("summed across 3 hosts") && rollbacks[0].detail.contains("back on 0.2.0"), "{rollbacks:?}");
    // One host rolled back for the breach; the other two followed the registry.
    let mut causes = Vec::new();
    for host in &hosts {
        let breach = metric(host, "warden_rollbacks_total{plugin=\"arena\",reason=\"error_rate\"}").await;
        let followed = metric(host, "warden_rollbacks_total{plugin=\"arena\",reason=\"fleet\"}").await;
        causes.push((host.id, breach, followed));
    }
    assert_eq!(causes.iter().filter(|c| c.1 == 1.0 && c.2 == 0.0).count(), 1, "one host judged the breach: {causes:?}");
    assert_eq!(causes.iter().filter(|c| c.1 == 0.0 && c.2 == 1.0).count(), 2, "two hosts followed: {causes:?}");
    // And a bad version is never loaded again, from any host's plugin directory.
    drop_signed(&hosts[2], &key, "0.3.0");
    wait_for("host c refuses 0.3.0", || async {
        s.audit_log(1000).await.unwrap().iter().any(|e| e.action == "reject" && e.detail.contains("marked-bad"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switches_rules_and_pushes_through_one_host_reach_the_others() {
    let Some(store) = TestStore::postgres("fleet_steer").await else { return };
    let (key, _, public_key) = sign::keygen().unwrap();
    let mut hosts: Vec<Host> = HOSTS[..2].iter().map(|id| Host::new(id)).collect();
    let pg = start_all(&mut hosts, &store.url, &public_key).await;
    let (a, b) = (hosts[0].admin(), hosts[1].admin());

    // A switch flipped on a is on b at once (b's status, and b's new joins).
    let req = warden::admin::SwitchRequest { switch: "joins".into(), on: false };
    a.action("arena", "switch", &req).await.unwrap();
    wait_for("joins are off on host b", || async {
        b.status().await.unwrap().plugins.iter().any(|p| p.switches.iter().any(|s| s.switch == "joins" && !s.on))
    })
    .await;

    // The hosts' event listeners lose their connections (PostgreSQL ends their sessions): a NOTIFY sent
    // meanwhile reaches no one, and a change made now still reaches b, from the event rows b reads
    // after it reconnects (and on its heartbeats).
    pg.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'")
        .await
        .unwrap();
    let req = warden::admin::SwitchRequest { switch: "feature:chat".into(), on: true };
    a.action("arena", "switch", &req).await.unwrap();
    wait_for("feature:chat is on on host b", || async {
        b.status().await.unwrap().plugins.iter().any(|p| p.switches.iter().any(|s| s.switch == "feature:chat" && s.on))
    })
    .await;

    // Rules set on a are in force on b.
    let rule: warden::rules::Rule = serde_json::from_value(serde_json::json!({
        "name": "chatty", "figure": "messages", "per": "player", "limit": 50.0, "action": "log"
    }))
    .unwrap();
    let message = a.set_rules(std::slice::from_ref(&rule)).await.unwrap().message;
    assert!(message.contains("every host of the fleet"), "{message}");
    wait_for("host b has the rule", || async { b.rules().await.unwrap().rules == [rule.clone()] }).await;

    // `warden push --fleet`: the version is stored in PostgreSQL, the rollout's leader deploys it, and
    // both hosts make it ready; pushed again, it is rejected by the fleet (not above the floor), and the
    // command says why.
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("arena-0.3.0.wasm");
    let bytes = wasm_bytes("arena");
    let mut m = manifest::read(&bytes).unwrap();
    m.version = "0.3.0".into();
    let stamped = manifest::stamp(&bytes, &m);
    std::fs::write(&file, &stamped).unwrap();
    let sig = sign::sign(&stamped, &sign::parse_secret_key(&key).unwrap(), "arena", "0.3.0").unwrap();
    std::fs::write(work.path().join("arena-0.3.0.wasm.minisig"), sig).unwrap();
    let push = || {
        std::process::Command::new(warden_tests::warden_bin())
            .arg("push")
            .arg(&file)
            .args(["--fleet", "--set", &format!("storage.url={:?}", store.url), "--set", &format!("deploy.trusted_keys=[{public_key:?}]")])
            .output()
            .unwrap()
    };
    let out = push();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("deployed arena 0.3.0 to the fleet"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("both hosts have 0.3.0 ready", || async {
        let ready = pg.host_versions().await.unwrap();
        ["a", "b"].iter().all(|h| ready.iter().any(|v| v.host == *h && v.version == "0.3.0" && v.state == "ready"))
    })
    .await;
    let out = push();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("the fleet rejected arena 0.3.0") && stderr.contains("floor"), "{stderr}");

    // A host that starts later starts with them.
    let mut c = Host::new("c");
    c.start(&store.url, SECRET, &settings(&public_key).iter().map(String::as_str).collect::<Vec<_>>()).await;
    let c_admin = c.admin();
    wait_for("host c has the rule, the switch, and the pushed version ready", || async {
        let ready = pg.host_versions().await.unwrap().iter().any(|v| v.host == "c" && v.version == "0.3.0" && v.state == "ready");
        let joins_off =
            c_admin.status().await.is_ok_and(|s| s.plugins.iter().any(|p| p.switches.iter().any(|s| s.switch == "joins" && !s.on)));
        ready && joins_off && c_admin.rules().await.is_ok_and(|r| r.rules == [rule.clone()])
    })
    .await;
}
