//! The operations files (`ops/grafana/warden.json`, `ops/prometheus/alerts.yml`) against a real server:
//! every `warden_` metric name they use is one the server exports (a renamed metric would leave a
//! dashboard panel empty and an alert silent).

use std::collections::BTreeSet;
use std::path::Path;
use warden::admin::Client;
use warden_tests::Serve;

/// Every name the exposition defines: families (`# TYPE`), their samples, and the suffixes their type
/// implies (`_total` for counters, `_bucket`, `_sum`, `_count` for histograms).
fn exported(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
            names.insert(name.to_string());
            match kind {
                "counter" => {
                    names.insert(format!("{name}_total"));
                }
                "histogram" => names.extend(["_bucket", "_sum", "_count"].map(|s| format!("{name}{s}"))),
                _ => {}
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            names.insert(line.split(['{', ' ']).next().unwrap().to_string());
        }
    }
    names
}

/// Every `warden_...` token in `text`.
fn used(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("warden_") {
        let start = i + at;
        let end = start + bytes[start..].iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count();
        names.insert(text[start..end].to_string());
        i = end;
    }
    names
}

#[test]
fn every_metric_the_dashboard_and_alerts_use_is_exported() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &["arena"], &[]);
    let token = std::fs::read_to_string(dir.path().join("admin.token")).unwrap().trim().to_string();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let text = rt.block_on(Client::new(serve.admin, token).metrics()).unwrap();
    let exported = exported(&text);
    assert!(exported.contains("warden_ticks_total") && exported.contains("warden_tick_duration_seconds_bucket"), "{exported:?}");

    let ops = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops");
    let dashboard = std::fs::read_to_string(ops.join("grafana/warden.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    assert!(json["panels"].as_array().is_some_and(|p| p.len() >= 10), "panels: {}", json["panels"]);
    let alerts = std::fs::read_to_string(ops.join("prometheus/alerts.yml")).unwrap();
    for (file, text) in [("ops/grafana/warden.json", &dashboard), ("ops/prometheus/alerts.yml", &alerts)] {
        let names = used(text);
        assert!(names.len() >= 5, "{file} uses {names:?}");
        let missing: Vec<_> = names.difference(&exported).collect();
        assert!(missing.is_empty(), "{file} uses metrics the server does not export: {missing:?}");
    }
    // The check can fail: a name the server does not have is caught.
    assert!(!used("rate(warden_tick_total[1m])").is_subset(&exported));
    drop(serve);
}
