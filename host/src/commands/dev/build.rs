//! What `warden dev` builds: a plugin project of `warden new`'s shape in any of the three languages,
//! built with that language's own tools and stamped with a development version.

use super::super::new::Lang;
use crate::runtime::manifest;
use anyhow::{Context as _, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A plugin project: its directory, language, and the name and version its build file gives.
#[derive(Clone, Debug)]
pub struct Project {
    /// The project's directory.
    pub dir: PathBuf,
    /// Its language, from the build file found there.
    pub lang: Lang,
    /// The plugin's name.
    pub name: String,
    /// The version its build file gives.
    pub version: semver::Version,
}

/// How a build failed: the compiler's errors, one line each.
#[derive(Debug)]
pub struct BuildFailed(pub Vec<String>);

/// The tools a build runs with.
#[derive(Clone, Debug)]
pub struct Tools {
    /// The Warden repository whose SDKs Python and JavaScript projects build with.
    pub sdk: PathBuf,
    /// The Python with componentize-py installed.
    pub python: PathBuf,
}

impl Project {
    /// The project in `dir`: `Cargo.toml` (Rust), `app.py` with `pyproject.toml` (Python), or `app.js`
    /// with `package.json` (JavaScript).
    pub fn find(dir: &Path) -> Result<Project> {
        let read =
            |file: &str| std::fs::read_to_string(dir.join(file)).with_context(|| format!("failed to read {}", dir.join(file).display()));
        let (lang, name, version) = if dir.join("Cargo.toml").is_file() {
            let cargo: toml::Table = toml::from_str(&read("Cargo.toml")?).context("Cargo.toml is not valid TOML")?;
            let package = cargo.get("package").and_then(|p| p.as_table()).context("Cargo.toml has no [package]")?;
            (Lang::Rust, field(package.get("name")), field(package.get("version")))
        } else if dir.join("app.py").is_file() && dir.join("pyproject.toml").is_file() {
            let py: toml::Table = toml::from_str(&read("pyproject.toml")?).context("pyproject.toml is not valid TOML")?;
            let project = py.get("project").and_then(|p| p.as_table()).context("pyproject.toml has no [project]")?;
            (Lang::Python, field(project.get("name")), field(project.get("version")))
        } else if dir.join("app.js").is_file() && dir.join("package.json").is_file() {
            let package: serde_json::Value = serde_json::from_str(&read("package.json")?).context("package.json is not valid JSON")?;
            let text = |key: &str| package.get(key).and_then(|v| v.as_str()).map(str::to_string);
            (Lang::Js, text("name"), text("version"))
        } else {
            bail!(
                "{} is not a plugin project: it has no Cargo.toml (Rust), app.py and pyproject.toml (Python), or app.js and \
                 package.json (JavaScript); `warden new NAME --lang rust|python|js` writes one",
                dir.display()
            );
        };
        let file = build_file(lang);
        let name = name.with_context(|| format!("{file} in {} names no plugin (its name)", dir.display()))?;
        let version = version.with_context(|| format!("{file} in {} gives no version", dir.display()))?;
        let version = semver::Version::parse(&version)
            .with_context(|| format!("{file}'s version {version:?} is not semver (write it like 0.1.0)"))?;
        Ok(Project { dir: dir.to_path_buf(), lang, name, version })
    }

    /// Builds the project into a component stamped as `version`, written to `out`.
    pub fn build(&self, version: &semver::Version, out: &Path, tools: &Tools) -> Result<(), BuildFailed> {
        let v = version.to_string();
        match self.lang {
            Lang::Rust => {
                let built = self.cargo_build()?;
                let bytes = std::fs::read(&built).map_err(|e| BuildFailed(vec![format!("failed to read {}: {e}", built.display())]))?;
                let found =
                    manifest::read(&bytes).map_err(|e| BuildFailed(vec![format!("{} has no Warden manifest: {e}", built.display())]))?;
                let stamped = manifest::stamp(&bytes, &manifest::Manifest { version: v, ..found });
                std::fs::write(out, stamped).map_err(|e| BuildFailed(vec![format!("failed to write {}: {e}", out.display())]))
            }
            Lang::Python => {
                let mut build = Command::new(&tools.python);
                build.args(["-m", "warden_sdk.build"]).arg(&self.dir).arg("-o").arg(out).args(["--version", &v]);
                build.env("PYTHONPATH", tools.sdk.join("guest-sdk/python"));
                run(build, "python -m warden_sdk.build")
            }
            Lang::Js => {
                let script = tools.sdk.join("guest-sdk/js/build.mjs");
                if !tools.sdk.join("guest-sdk/js/node_modules").is_dir() {
                    return Err(BuildFailed(vec![format!(
                        "the JavaScript SDK's tools are not installed: run `npm ci` in {}",
                        tools.sdk.join("guest-sdk/js").display()
                    )]));
                }
                let mut build = Command::new("node");
                build.arg(script).arg(&self.dir).arg("-o").arg(out).args(["--version", &v]);
                run(build, "node build.mjs")
            }
        }
    }

    /// `cargo build --release` for wasm32-wasip2; the component it wrote.
    fn cargo_build(&self) -> Result<PathBuf, BuildFailed> {
        let output = Command::new("cargo")
            .args(["build", "--release", "--target", "wasm32-wasip2", "--message-format=json-diagnostic-short"])
            .current_dir(&self.dir)
            .output()
            .map_err(|e| BuildFailed(vec![format!("failed to run cargo: {e}")]))?;
        let mut errors = Vec::new();
        let mut built = None;
        let lib = self.name.replace('-', "_");
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            match msg["reason"].as_str() {
                Some("compiler-message") if msg["message"]["level"] == "error" => {
                    if let Some(text) = msg["message"]["rendered"].as_str() {
                        errors.push(text.trim().to_string());
                    }
                }
                Some("compiler-artifact") if msg["target"]["name"] == lib.as_str() => {
                    let files = msg["filenames"].as_array().into_iter().flatten().filter_map(|f| f.as_str());
                    built = files.filter(|f| f.ends_with(".wasm")).map(PathBuf::from).next().or(built);
                }
                _ => {}
            }
        }
        match (output.status.success(), built) {
            (true, Some(built)) => Ok(built),
            (true, None) => {
                Err(BuildFailed(vec![format!("cargo built no {lib}.wasm: is [lib] crate-type = [\"cdylib\", ...] in Cargo.toml?")]))
            }
            (false, _) if !errors.is_empty() => Err(BuildFailed(errors)),
            (false, _) => Err(BuildFailed(last_lines(&output.stderr))),
        }
    }
}

/// The build file that names a project of `lang`.
fn build_file(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "Cargo.toml",
        Lang::Python => "pyproject.toml",
        Lang::Js => "package.json",
    }
}

fn field(value: Option<&toml::Value>) -> Option<String> {
    value.and_then(|v| v.as_str()).map(str::to_string)
}

/// Runs a build tool; on failure, its error lines.
fn run(mut command: Command, what: &str) -> Result<(), BuildFailed> {
    let output = command.output().map_err(|e| BuildFailed(vec![format!("failed to run {what}: {e}")]))?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = output.stderr.clone();
    text.extend_from_slice(&output.stdout);
    Err(BuildFailed(error_lines(&text)))
}

/// The lines of a tool's output that name an error (a Python `SyntaxError: ...`, esbuild's `✘ [ERROR]`
/// with the location after it), or its last lines if none does.
fn error_lines(text: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(text);
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.contains("[ERROR]") {
            // esbuild: the message, then the file:line:column on the next line.
            let at = lines.get(i + 1).filter(|next| next.contains(':')).map(|next| format!(" at {next}")).unwrap_or_default();
            found.push(format!("{}{at}", line.trim_start_matches("✘ ")));
        } else if line.contains("Error:") || line.starts_with("error") {
            // Python: the traceback's last `File "...", line N` says where.
            let at = lines[..i].iter().rev().find_map(|l| python_location(l)).map(|at| format!(" at {at}")).unwrap_or_default();
            found.push(format!("{line}{at}"));
        }
    }
    if found.is_empty() { last_lines(text.as_bytes()) } else { found }
}

/// `file:line` from a Python traceback's `File "path", line N` line.
fn python_location(line: &str) -> Option<String> {
    let rest = line.strip_prefix("File \"")?;
    let (file, rest) = rest.split_once('"')?;
    let number: String = rest.strip_prefix(", line ")?.chars().take_while(char::is_ascii_digit).collect();
    let file = Path::new(file).file_name().map_or(file.into(), |n| n.to_string_lossy());
    Some(format!("{file}:{number}"))
}

fn last_lines(text: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(text);
    let lines: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
    lines[lines.len().saturating_sub(3)..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_name_the_error_and_where() {
        let esbuild = "✘ [ERROR] Expected \";\" but found \"}\"\n\n    app.js:12:4:\n      12 │ }\n\n1 error\n";
        assert_eq!(error_lines(esbuild.as_bytes()), vec!["[ERROR] Expected \";\" but found \"}\" at app.js:12:4:"]);
        let python = "Traceback (most recent call last):\n  File \"game.py\", line 3\n    def (:\nSyntaxError: invalid syntax\n";
        assert_eq!(error_lines(python.as_bytes()), vec!["SyntaxError: invalid syntax at game.py:3"]);
        assert_eq!(error_lines(b"a\nb\nc\nd\n"), vec!["b", "c", "d"]);
    }
}
