//! Options shared by the commands that read `warden.toml`.

use crate::config::Config;
use anyhow::Result;
use std::path::{Path, PathBuf};

/// Where the configuration comes from.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConfigArgs {
    /// Configuration file [default: ./warden.toml if it exists]. Every key can also be set with an
    /// environment variable WARDEN_<KEY> (nested keys joined by __, e.g. WARDEN_NET__WS_ADDR).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Set any configuration key, over the file and the environment: --set rooms.tick_hz=30 (repeatable;
    /// values are TOML, anything else is a string).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

impl ConfigArgs {
    /// The effective configuration, with `extra` overrides applied before the `--set` ones.
    pub fn load(&self, extra: Vec<String>) -> Result<Config> {
        let default = Path::new("warden.toml");
        let file = self.config.as_deref().or(default.exists().then_some(default));
        let sets: Vec<String> = extra.into_iter().chain(self.sets.iter().cloned()).collect();
        Config::load(file, std::env::vars(), &sets)
    }
}

/// `key = "value"` with the value quoted as a TOML string.
pub fn set_string(key: &str, value: &str) -> String {
    format!("{key}={}", toml::Value::String(value.to_string()))
}
