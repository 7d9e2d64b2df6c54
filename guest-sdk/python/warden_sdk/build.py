"""Builds a Python plugin directory into a Warden component.

    python -m warden_sdk.build PLUGIN_DIR -o OUT.wasm [--version V] [--wit WIT_DIR]

``PLUGIN_DIR`` holds ``pyproject.toml`` (``[project]`` ``name`` and ``version``: the plugin's name and
semver version) and ``app.py``, which ends with ``WitWorld = export_game(MyGame)``. The component is
made by componentize-py (CPython compiled to WebAssembly, with every module ``app.py`` imports at build
time bundled in: import what you use at the top of a module), then stamped with the ``warden-manifest``
section the host reads (name, version, WIT version, SDK). The output is written under a temporary name
and renamed, so a watched plugin directory never sees half a file.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import tomllib

from . import SDK_VERSION

WIT_VERSION = "0.1.0"
MANIFEST_SECTION = "warden-manifest"
SDK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_WIT = os.path.join(SDK_DIR, "..", "..", "wit")


def leb128(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n == 0:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def manifest_section(name: str, version: str) -> bytes:
    """A top-level custom section holding the manifest (the host reads the last one)."""
    body = json.dumps({"name": name, "version": version, "wit": WIT_VERSION, "sdk": f"python-{SDK_VERSION}"}).encode()
    content = leb128(len(MANIFEST_SECTION)) + MANIFEST_SECTION.encode() + body
    return b"\x00" + leb128(len(content)) + content


def read_project(plugin_dir: str) -> tuple[str, str]:
    path = os.path.join(plugin_dir, "pyproject.toml")
    try:
        with open(path, "rb") as f:
            project = tomllib.load(f)["project"]
        return project["name"], project["version"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as e:
        raise SystemExit(f"{path}: needs a [project] table with name and version ({e!r}); see docs/plugins.md")


def componentize_py() -> str:
    """The componentize-py of this Python environment."""
    found = shutil.which("componentize-py", path=os.path.dirname(sys.executable)) or shutil.which("componentize-py")
    if not found:
        raise SystemExit("componentize-py is not installed: pip install -r guest-sdk/python/requirements.txt")
    return found


def build(plugin_dir: str, out: str, version: str | None = None, wit: str = DEFAULT_WIT) -> str:
    name, declared = read_project(plugin_dir)
    version = version or declared
    if not os.path.exists(os.path.join(plugin_dir, "app.py")):
        raise SystemExit(f"{plugin_dir}: no app.py (it ends with `WitWorld = export_game(MyGame)`)")
    with tempfile.TemporaryDirectory() as meta:
        with open(os.path.join(meta, "warden_plugin_meta.py"), "w") as f:
            f.write(f"NAME = {name!r}\nVERSION = {version!r}\n")
        raw = os.path.join(meta, "component.wasm")
        paths = [plugin_dir, SDK_DIR, meta, sysconfig.get_paths()["purelib"]]
        command = [componentize_py(), "-d", wit, "-w", "game", "componentize", "app", "-o", raw]
        for path in paths:
            command[-3:-3] = ["-p", path]
        # MessagePack's pure-Python half: its C extension is native code, which a component cannot load.
        env = dict(os.environ, MSGPACK_PUREPYTHON="1")
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"componentize-py failed to build {plugin_dir}:\n{done.stderr.strip() or done.stdout.strip()}")
        with open(raw, "rb") as f:
            component = f.read()
    tmp = os.path.join(os.path.dirname(os.path.abspath(out)), f".{os.path.basename(out)}.tmp")
    with open(tmp, "wb") as f:
        f.write(component + manifest_section(name, version))
    os.replace(tmp, out)
    return f"{out}: {name} {version} ({len(component) + len(manifest_section(name, version))} bytes)"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m warden_sdk.build", description=__doc__.split("\n\n")[0])
    parser.add_argument("plugin_dir", help="the plugin's directory (pyproject.toml, app.py)")
    parser.add_argument("-o", "--out", required=True, help="the component to write (.wasm)")
    parser.add_argument("--version", help="stamp this version instead of pyproject.toml's")
    parser.add_argument("--wit", default=DEFAULT_WIT, help="the warden:plugin WIT directory [default: the repository's wit/]")
    args = parser.parse_args(argv)
    print(build(args.plugin_dir, args.out, args.version, args.wit))


if __name__ == "__main__":
    main()
