//! `/metrics` as a test reads it: one scrape through the admin endpoint, parsed by a Prometheus text
//! parser (`prometheus-parse`), never by substring.

use warden::server::Server;

/// The samples of one scrape.
pub struct Scrape(pub Vec<prometheus_parse::Sample>);

impl Scrape {
    pub async fn of(server: &Server) -> Scrape {
        let text = server.admin_client().metrics().await.expect("GET /metrics");
        if std::env::var_os("WARDEN_SHOW_METRICS").is_some() {
            println!("{text}");
        }
        let lines = text.lines().map(|l| Ok(l.to_string()));
        Scrape(prometheus_parse::Scrape::parse(lines).expect("the exposition parses").samples)
    }

    /// The value of the sample `name` whose labels are exactly `labels`, if there is one.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let sample = self
            .0
            .iter()
            .find(|s| s.metric == name && s.labels.len() == labels.len() && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))?;
        match sample.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        }
    }

    /// Every sample named `name`.
    pub fn all(&self, name: &str) -> Vec<&prometheus_parse::Sample> {
        self.0.iter().filter(|s| s.metric == name).collect()
    }
}
