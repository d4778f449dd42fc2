#!/usr/bin/env node
// Checks what `npm pack` put in the tarball: exactly the compiled JS and
// types, binding.gyp and CMakeLists.txt with the native sources they build
// (native/test excluded), the seven committed prebuilds (two of them musl) and the five native
// clients (simple-ipc-send), byte for byte
// the files in prebuilds/ (scripts/prebuild/targets.mjs), and the documents
// the README links to (LICENSE, CHANGELOG.md, CONTRIBUTING.md, the manual
// in docs/, examples/, bench/README.md); nothing else (no tests, benchmark
// code, scripts, TypeScript sources, source maps, build output).
// Usage: node check-tarball.mjs <package.tgz> <repo root>
// Prints what it found; exits 1 with the reasons if anything is off.
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ALL_TARGETS, CLI_TARGETS, addonPath, cliFile } from '../prebuild/targets.mjs';

const [tgz, root] = process.argv.slice(2);
const entries = execFileSync('tar', ['-tzf', tgz], { encoding: 'utf8' })
  .split('\n')
  .filter((e) => e && !e.endsWith('/'))
  .map((e) => e.replace(/^package\//, ''));
const have = new Set(entries);
const problems = [];

// 1. Nothing outside the allow-list.
const allowed = [
  /^package\.json$/,
  /^README\.md$/,
  /^LICENSE(\.md|\.txt)?$/,
  /^(CHANGELOG|CONTRIBUTING)\.md$/,
  /^docs\/[A-Za-z0-9_-]+\.md$/,
  /^examples\/[A-Za-z0-9_/.-]+$/,
  /^bench\/README\.md$/,
  /^binding\.gyp$/,
  /^CMakeLists\.txt$/,
  /^dist\/(cli\/)?[A-Za-z0-9_-]+\.(js|mjs|d\.ts|d\.mts)$/,
  /^native\/(core|posix|addon|win)\/[A-Za-z0-9_-]+\.(h|cc)$/,
  ...ALL_TARGETS.map((t) => new RegExp(`^prebuilds/${addonPath(t).replace(/\./g, '\\.')}$`)),
  new RegExp(`^prebuilds/(${Object.keys(CLI_TARGETS).join('|')})/simple-ipc-send(\\.exe)?$`),
];
for (const e of entries) {
  if (!allowed.some((re) => re.test(e))) problems.push(`not allowed in the package: ${e}`);
}

// 2. Everything a user needs is there.
// The addon and the native client simple-ipc-send of every platform.
const clients = Object.keys(CLI_TARGETS).map((t) => `prebuilds/${t}/${cliFile(t)}`);
const prebuilds = [...ALL_TARGETS.map((t) => `prebuilds/${addonPath(t)}`), ...clients];
const required = ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md', 'CONTRIBUTING.md', 'bench/README.md', 'binding.gyp', 'CMakeLists.txt', ...prebuilds];
// Every compiled module of lib/ with its types (index.mts gives .mjs/.d.mts).
// lib/cli/ holds the command line tool's modules.
const libFiles = [
  ...fs.readdirSync(path.join(root, 'lib')),
  ...fs.readdirSync(path.join(root, 'lib', 'cli')).map((f) => `cli/${f}`),
];
for (const f of libFiles) {
  const m = /^(.*)\.(ts|mts)$/.exec(f);
  if (!m || f.endsWith('.d.ts')) continue;
  required.push(m[2] === 'mts' ? `dist/${m[1]}.mjs` : `dist/${m[1]}.js`, m[2] === 'mts' ? `dist/${m[1]}.d.mts` : `dist/${m[1]}.d.ts`);
}
// Every tracked native source of the addon (native/test is not shipped).
const tracked = execFileSync('git', ['ls-files', 'native'], { cwd: root, encoding: 'utf8' }).split('\n').filter(Boolean);
for (const f of tracked) if (/^native\/(core|posix|addon|win)\//.test(f)) required.push(f);
// The manual and the examples, as tracked.
const documents = execFileSync('git', ['ls-files', 'docs', 'examples'], { cwd: root, encoding: 'utf8' }).split('\n').filter(Boolean);
for (const f of documents) if (/^docs\/[^/]+\.md$/.test(f) || f.startsWith('examples/')) required.push(f);
for (const f of required) if (!have.has(f)) problems.push(`missing from the package: ${f}`);
// Each packed prebuild is the committed file (the one check-binaries.mjs checked).
const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');
for (const f of prebuilds) {
  if (!have.has(f) || !fs.existsSync(path.join(root, f))) continue;
  const packed = execFileSync('tar', ['-xzOf', tgz, `package/${f}`], { maxBuffer: 64 << 20 });
  if (sha256(packed) !== sha256(fs.readFileSync(path.join(root, f)))) problems.push(`packed ${f} differs from the one in prebuilds/`);
}

// The native client is packed executable (npm keeps the mode; the bin
// launcher restores it if an installer dropped it, when it may).
const modes = new Map(
  execFileSync('tar', ['-tvzf', tgz], { encoding: 'utf8' })
    .split('\n')
    .map((l) => /^(\S+)\s.*\spackage\/(\S+)$/.exec(l))
    .filter(Boolean)
    .map((m) => [m[2], m[1]]),
);
for (const f of clients) {
  if (have.has(f) && !/^-rwx/.test(modes.get(f) ?? '')) problems.push(`${f} is packed without its execute bit (${modes.get(f)})`);
}

// 3. package.json's entry points all exist in the tarball.
const pkg = JSON.parse(execFileSync('tar', ['-xzOf', tgz, 'package/package.json'], { encoding: 'utf8' }));
const targets = [];
const walk = (v, where) => {
  if (typeof v === 'string') targets.push([where, v]);
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, `${where}.${k}`);
};
walk(pkg.main, 'main');
walk(pkg.types, 'types');
walk(pkg.exports, 'exports');
walk(pkg.bin, 'bin');
for (const [where, target] of targets) {
  const rel = path.posix.normalize(target).replace(/^\.\//, '');
  if (!have.has(rel)) problems.push(`${where} points at ${target}, not in the package`);
}
for (const cond of ['import', 'require']) {
  if (!pkg.exports?.['.']?.[cond]?.types) problems.push(`exports["."].${cond} has no types`);
}

const count = (re) => entries.filter((e) => re.test(e)).length;
console.log(
  `tarball ${path.basename(tgz)}: ${entries.length} files: ${count(/^dist\//)} in dist/, ` +
    `${count(/^native\//)} native sources, ${count(/^docs\//)} pages of docs/, ${count(/^examples\//)} example files, prebuilds (each the committed file): ` +
    entries.filter((e) => e.startsWith('prebuilds/')).join(', '),
);
if (problems.length) {
  for (const p of problems) console.log(`  ${p}`);
  process.exit(1);
}
