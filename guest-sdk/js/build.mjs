// Builds a JavaScript plugin directory into a Warden component:
//
//   node guest-sdk/js/build.mjs PLUGIN_DIR -o OUT.wasm [--version V]
//
// PLUGIN_DIR holds package.json (`name` and `version`: the plugin's name and semver version) and app.js,
// which ends with `export const { init, ... } = exportGame(MyGame)`. esbuild bundles app.js with the SDK
// and what it imports into one module (componentize-js takes one); componentize-js (StarlingMonkey, a
// JavaScript engine compiled to WebAssembly) makes the component against wit/, without the WASI HTTP
// and fetch-event features the host does not provide; then the `warden-manifest` section the host reads
// is appended. The output is written under a temporary name and renamed.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const SDK_DIR = path.dirname(fileURLToPath(import.meta.url));
const WIT_DIR = path.join(SDK_DIR, '..', '..', 'wit');
const BIN = path.join(SDK_DIR, 'node_modules', '.bin');
const WIT_VERSION = '0.1.0';
const SDK_VERSION = JSON.parse(fs.readFileSync(path.join(SDK_DIR, 'package.json'), 'utf8')).version;

function leb128(n) {
  const out = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return Buffer.from(out);
}

/** A top-level custom section holding the manifest (the host reads the last one). */
export function manifestSection(name, version) {
  const body = Buffer.from(JSON.stringify({ name, version, wit: WIT_VERSION, sdk: `js-${SDK_VERSION}` }));
  const title = Buffer.from('warden-manifest');
  const content = Buffer.concat([leb128(title.length), title, body]);
  return Buffer.concat([Buffer.from([0]), leb128(content.length), content]);
}

export function build(pluginDir, out, versionOverride) {
  const pkgPath = path.join(pluginDir, 'package.json');
  const pkg = JSON.parse(fs.readFileSync(pkgPath, 'utf8'));
  if (!pkg.name || !pkg.version) throw new Error(`${pkgPath}: needs a name and a version (docs/plugins.md)`);
  const version = versionOverride ?? pkg.version;
  if (!fs.existsSync(path.join(pluginDir, 'app.js'))) throw new Error(`${pluginDir}: no app.js (it ends with \`export const { init, ... } = exportGame(MyGame)\`)`);
  // componentize-js reads its inputs through a WASI sandbox that sees the working directory only: the
  // bundle and a copy of wit/ go into a directory of their own.
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-js-'));
  try {
    fs.cpSync(WIT_DIR, path.join(work, 'wit'), { recursive: true });
    execFileSync(path.join(BIN, 'esbuild'), [
      path.join(pluginDir, 'app.js'), '--bundle', '--format=esm', '--platform=neutral', '--outfile=' + path.join(work, 'bundle.js'),
      '--external:warden:plugin/*', '--main-fields=module,main', `--define:__WARDEN_PLUGIN_VERSION__=${JSON.stringify(version)}`,
      `--alias:warden-sdk=${path.join(SDK_DIR, 'src')}`, '--log-level=warning',
    ], { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, NODE_PATH: path.join(SDK_DIR, 'node_modules') } });
    execFileSync(path.join(BIN, 'componentize-js'), [
      '--wit', 'wit', '--world-name', 'game', '--disable', 'http', 'fetch-event', '-o', 'component.wasm', 'bundle.js',
    ], { cwd: work, stdio: ['ignore', 'ignore', 'inherit'] });
    const component = fs.readFileSync(path.join(work, 'component.wasm'));
    const tmp = path.join(path.dirname(path.resolve(out)), `.${path.basename(out)}.tmp`);
    fs.writeFileSync(tmp, Buffer.concat([component, manifestSection(pkg.name, version)]));
    fs.renameSync(tmp, out);
    return `${out}: ${pkg.name} ${version} (${component.length} bytes)`;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const flag = (name) => {
    const i = args.indexOf(name);
    return i >= 0 ? args.splice(i, 2)[1] : undefined;
  };
  const out = flag('-o') ?? flag('--out');
  const version = flag('--version');
  if (args.length !== 1 || !out) {
    console.error('usage: node guest-sdk/js/build.mjs PLUGIN_DIR -o OUT.wasm [--version V]');
    process.exit(2);
  }
  try {
    console.log(build(args[0], out, version));
  } catch (e) {
    console.error(`failed to build ${args[0]}: ${e.message}`);
    process.exit(1);
  }
}
