//! `warden new NAME --lang rust|python|js`: a ready plugin project (its build file, a hello game, and a
//! test of it on the SDK's native harness) that builds and passes its own test as written.

use anyhow::{Context as _, Result, bail};
use std::path::{Path, PathBuf};

/// The language of a new plugin.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// Rust, with the `warden-sdk` crate.
    Rust,
    /// Python, with `guest-sdk/python` (componentize-py builds it).
    Python,
    /// JavaScript, with `guest-sdk/js` (componentize-js builds it).
    Js,
}

/// Arguments of `warden new`.
#[derive(clap::Args, Debug)]
pub struct NewArgs {
    /// The plugin's name: lowercase letters, digits and dashes, starting with a letter (e.g. my-game).
    pub name: String,
    /// The language to write it in.
    #[arg(long, value_enum, default_value = "rust")]
    pub lang: Lang,
    /// Where to write the project [default: ./NAME]; it must not exist yet.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The Warden repository whose SDKs the project uses [default: the one this binary was built from].
    #[arg(long, value_name = "REPO")]
    pub sdk: Option<PathBuf>,
}

/// The files of each language's project: (path, template). `{{name}}`, `{{crate}}` (the name with
/// underscores) and `{{sdk}}` (the repository) are filled in.
/// A Rust project's game is `plugins/hello` itself (its test included), so the template cannot drift
/// from the example the workspace builds and tests.
const RUST: &[(&str, &str)] =
    &[("Cargo.toml", include_str!("new/rust/Cargo.toml")), ("src/lib.rs", include_str!("../../../plugins/hello/src/lib.rs"))];
const PYTHON: &[(&str, &str)] = &[
    ("pyproject.toml", include_str!("new/python/pyproject.toml")),
    ("app.py", include_str!("new/python/app.py")),
    ("game.py", include_str!("new/python/game.py")),
    ("tests/test_game.py", include_str!("new/python/tests/test_game.py")),
];
const JS: &[(&str, &str)] = &[
    ("package.json", include_str!("new/js/package.json")),
    ("app.js", include_str!("new/js/app.js")),
    ("game.js", include_str!("new/js/game.js")),
    ("test/game.test.js", include_str!("new/js/test/game.test.js")),
];

/// Runs `warden new`.
pub fn run(args: NewArgs) -> Result<()> {
    let name = &args.name;
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !valid {
        bail!("{name:?} is not a plugin name: use lowercase letters, digits and dashes, starting with a letter (e.g. my-game)");
    }
    let sdk = sdk_repo(args.sdk)?;
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() {
        bail!("{} exists; choose another --dir or remove it", dir.display());
    }
    let files = match args.lang {
        Lang::Rust => RUST,
        Lang::Python => PYTHON,
        Lang::Js => JS,
    };
    let fill = |template: &str| {
        template.replace("{{name}}", name).replace("{{crate}}", &name.replace('-', "_")).replace("{{sdk}}", &sdk.display().to_string())
    };
    for (path, template) in files {
        write(&dir.join(path), &fill(template))?;
    }
    let shown = dir.display();
    let next = match args.lang {
        Lang::Rust => format!("cd {shown} && cargo test"),
        Lang::Python => format!("cd {shown} && PYTHONPATH={}/guest-sdk/python:. python3 -m pytest", sdk.display()),
        Lang::Js => format!("cd {shown} && npm install && npm test"),
    };
    println!("wrote {name} ({:?}) in {shown}; its test: {next}", args.lang);
    Ok(())
}

/// The Warden repository whose SDKs projects use: `given`, or the one this binary was built from.
pub(crate) fn sdk_repo(given: Option<PathBuf>) -> Result<PathBuf> {
    let sdk = given.unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."));
    let sdk = sdk.canonicalize().with_context(|| format!("the Warden repository {} is not there; pass --sdk REPO", sdk.display()))?;
    if !sdk.join("guest-sdk").is_dir() {
        bail!("{} has no guest-sdk directory; pass --sdk with the path of a Warden repository", sdk.display());
    }
    Ok(sdk)
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("failed to create {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("failed to write {}", path.display()))
}
