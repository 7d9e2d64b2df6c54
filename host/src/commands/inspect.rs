//! `warden inspect <file.wasm>`: what a plugin file is, or why it is not one.

use crate::runtime::{InstanceEnv, Limits, Plugin, Runtime};
use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `warden inspect`.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// The plugin component (.wasm) to inspect.
    pub file: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The facts `inspect` reports about a valid plugin.
#[derive(Serialize)]
struct Report {
    file: String,
    size: usize,
    sha256: String,
    name: String,
    version: String,
    wit: String,
    sdk: Option<String>,
    world: String,
    exports: Vec<String>,
    imports: Vec<String>,
    compile_ms: f64,
    instantiate_us: f64,
}

/// Runs `warden inspect`.
pub fn run(args: InspectArgs) -> Result<()> {
    let shown = args.file.display().to_string();
    let bytes = std::fs::read(&args.file).with_context(|| format!("failed to read {shown}"))?;
    // A small pool: inspect only ever makes one instance.
    let rt = Runtime::new(Limits { max_instances: 2, ..Limits::default() }, None)?;
    let plugin = match rt.load(&bytes) {
        Ok(plugin) => plugin,
        Err(e) => {
            let sha = hex::encode(Sha256::digest(&bytes));
            bail!("{shown} is not a valid Warden plugin: {e}\n  ({} bytes, sha256 {sha})", bytes.len())
        }
    };
    let report = report(&shown, &plugin)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(())
}

fn report(file: &str, plugin: &Plugin) -> Result<Report> {
    let started = Instant::now();
    plugin.instantiate(InstanceEnv::standalone("inspect", 0))?;
    let instantiate_us = started.elapsed().as_secs_f64() * 1e6;
    let m = plugin.manifest();
    Ok(Report {
        file: file.to_string(),
        size: plugin.size(),
        sha256: plugin.sha256().to_string(),
        name: m.name.clone(),
        version: m.version.clone(),
        wit: m.wit.clone(),
        sdk: m.sdk.clone(),
        world: format!("warden:plugin/game@{}", m.wit),
        exports: plugin.exports().to_vec(),
        imports: plugin.imports().to_vec(),
        compile_ms: plugin.compile_time().as_secs_f64() * 1e3,
        instantiate_us,
    })
}

fn print_text(r: &Report) {
    println!("{}", r.file);
    println!("  plugin       {} {}", r.name, r.version);
    println!("  built with   warden-sdk {} (WIT warden:plugin@{})", r.sdk.as_deref().unwrap_or("(none)"), r.wit);
    println!("  world        {}", r.world);
    println!("  exports      {}", r.exports.join(", "));
    println!("  imports      {}", r.imports.first().map(String::as_str).unwrap_or("(none)"));
    for import in r.imports.iter().skip(1) {
        println!("               {import}");
    }
    println!("  size         {} bytes", r.size);
    println!("  sha256       {}", r.sha256);
    println!("  compile      {:.1} ms (Cranelift, no cache)", r.compile_ms);
    println!("  instantiate  {:.0} us (pooling allocator)", r.instantiate_us);
}
