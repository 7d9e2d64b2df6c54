// Generates TypeScript declarations of the `game` world from wit/ (jco's guest types: what a component's
// JavaScript imports from the host and must export) into types/wit/, where `tsc -p .` reads them to check
// the SDK against the WIT (tsconfig.json, test/wit-types.ts).
//
//   node guest-sdk/js/wit-types.mjs
//
// jco's type generator runs as a WebAssembly component whose file access does not reach this machine's
// paths, so the WIT is handed to it as source: the package's files joined, under one `package` line.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const SDK_DIR = path.dirname(fileURLToPath(import.meta.url));
// jco-transpile's bindings generator (not among the package's exports, so reached by its path).
const BINDGEN = path.join(SDK_DIR, 'node_modules', '@bytecodealliance', 'jco-transpile', 'vendor', 'js-component-bindgen-component.js');
const { $init, generateTypes } = await import(pathToFileURL(BINDGEN).href);
const WIT_DIR = path.join(SDK_DIR, '..', '..', 'wit');
const OUT = path.join(SDK_DIR, 'types', 'wit');

let packageLine = null;
const bodies = [];
for (const file of fs.readdirSync(WIT_DIR).filter((f) => f.endsWith('.wit')).sort()) {
  const lines = fs.readFileSync(path.join(WIT_DIR, file), 'utf8').split('\n');
  bodies.push(lines.filter((line) => {
    if (!/^package\s/.test(line)) return true;
    if (packageLine !== null && line.trim() !== packageLine.trim()) throw new Error(`${file}: ${line} differs from ${packageLine}`);
    packageLine = line;
    return false;
  }).join('\n'));
}
if (packageLine === null) throw new Error(`${WIT_DIR}: no .wit file names its package`);

await $init;
const files = generateTypes('game', {
  wit: { tag: 'source', val: `${packageLine}\n${bodies.join('\n')}` },
  world: 'game',
  guest: true,
  features: { tag: 'list', val: [] },
});
fs.rmSync(OUT, { recursive: true, force: true });
for (const [name, text] of files) {
  fs.mkdirSync(path.dirname(path.join(OUT, name)), { recursive: true });
  fs.writeFileSync(path.join(OUT, name), text);
}
console.log(`wrote ${files.length} declaration files of world game to ${path.relative(process.cwd(), OUT) || '.'}`);
