#!/usr/bin/env node
// prebuilds/manifest.json: for each committed prebuild, the SHA-256 of the
// binary and of exactly the inputs it was built from (sources and headers,
// binding.gyp, the build scripts, the pinned toolchain and header packages
// as package-lock.json records them). CI recomputes the inputs hash, which
// is cheap, instead of rebuilding: a prebuild whose inputs changed since it
// was built is stale, and `npm run prebuild:all` must be run again.
//
//   node scripts/prebuild/manifest.mjs check             every prebuild is current
//   node scripts/prebuild/manifest.mjs record <target>   after building it
//
// Each platform has two prebuilds: the addon (key "<target>") and the
// native command-line client simple-ipc-send (key "<target>/simple-ipc-send",
// built by cli.mjs from its own, smaller set of inputs).
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT } from '../build/sources.mjs';
import { ALL_TARGETS, CLI_NAME, CLI_TARGETS, WIN_TARGET, ZIG_TARGETS, addonPath, cliFile } from './targets.mjs';

const MANIFEST = path.join(ROOT, 'prebuilds', 'manifest.json');

const sha256 = (data) => crypto.createHash('sha256').update(data).digest('hex');

function filesIn(dir, re) {
  const abs = path.join(ROOT, dir);
  if (!fs.existsSync(abs)) return [];
  return fs
    .readdirSync(abs)
    .filter((f) => re.test(f))
    .map((f) => `${dir}/${f}`);
}

// Every file a target's build reads from the repository.
export function inputFiles(target) {
  const native = target === WIN_TARGET ? ['core', 'addon', 'win'] : ['core', 'addon', 'posix'];
  const scripts =
    target === WIN_TARGET
      ? ['scripts/win/Makefile', 'scripts/win/build.sh', 'scripts/win/common.sh']
      : ['scripts/prebuild/build.mjs', 'scripts/prebuild/targets.mjs', 'scripts/prebuild/deps.mjs', 'scripts/prebuild/linux-exports.map', 'scripts/prebuild/glibc_compat.cc'];
  return [
    'binding.gyp',
    'scripts/build/sources.mjs',
    ...scripts,
    ...native.flatMap((d) => filesIn(`native/${d}`, /\.(h|cc)$/)),
  ].sort();
}

// Every file the native client's build reads (cli.mjs), for a target.
export function cliInputFiles(target) {
  const native = target === WIN_TARGET ? ['core', 'win', 'cli'] : ['core', 'posix', 'cli'];
  return [
    'scripts/prebuild/cli.mjs', 'scripts/prebuild/build.mjs', 'scripts/prebuild/targets.mjs', 'scripts/prebuild/deps.mjs',
    ...native.flatMap((d) => filesIn(`native/${d}`, /\.(h|cc)$/)),
  ].sort();
}

// The package's version, which the client prints (--version): from
// package-lock.json, like the header packages, and not the whole of
// package.json, whose other fields do not reach the binary.
export function packageVersion(root = ROOT) {
  return JSON.parse(fs.readFileSync(path.join(root, 'package-lock.json'), 'utf8')).packages[''].version;
}

// The client's inputs, and its version.
export function cliInputsHash(target) {
  const lines = cliInputFiles(target).map((f) => `${sha256(fs.readFileSync(path.join(ROOT, f)))}  ${f}`);
  const version = packageVersion();
  return sha256([...lines, `version ${version}`].join('\n') + '\n');
}

// The header packages, by the integrity npm checked them with. (The Zig
// toolchain is pinned, with its integrity, in deps.mjs, one of the inputs.)
function lockedPackages(target) {
  const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8'));
  const names = ['node-addon-api', ...(target === WIN_TARGET ? [] : ['node-api-headers'])];
  return names.map((n) => {
    const p = lock.packages[`node_modules/${n}`];
    if (!p) throw new Error(`package-lock.json has no ${n}`);
    return `${n}@${p.version} ${p.integrity}`;
  });
}

export function inputsHash(target) {
  const lines = inputFiles(target).map((f) => `${sha256(fs.readFileSync(path.join(ROOT, f)))}  ${f}`);
  return sha256([...lines, ...lockedPackages(target)].join('\n') + '\n');
}

function readManifest() {
  return fs.existsSync(MANIFEST) ? JSON.parse(fs.readFileSync(MANIFEST, 'utf8')) : {};
}

export function recordTarget(target, file = path.join(ROOT, 'prebuilds', addonPath(target)), kind = 'addon') {
  const manifest = readManifest();
  if (kind === 'cli') {
    manifest[`${target}/${CLI_NAME}`] = {
      file: path.relative(path.dirname(MANIFEST), file),
      sha256: sha256(fs.readFileSync(file)),
      inputsSha256: cliInputsHash(target),
      toolchain: `zig c++ -target ${CLI_TARGETS[target].zig}`,
      inputs: cliInputFiles(target).length,
    };
    writeManifest(manifest);
    return;
  }
  manifest[target] = {
    file: path.relative(path.dirname(MANIFEST), file),
    sha256: sha256(fs.readFileSync(file)),
    inputsSha256: inputsHash(target),
    toolchain: ZIG_TARGETS[target] ? `zig c++ -target ${ZIG_TARGETS[target].zig}` : 'MinGW-w64 (scripts/win/build.sh)',
    inputs: inputFiles(target).length,
  };
  writeManifest(manifest);
}

function writeManifest(manifest) {
  const sorted = Object.fromEntries(Object.keys(manifest).sort().map((k) => [k, manifest[k]]));
  fs.writeFileSync(MANIFEST, JSON.stringify(sorted, null, 2) + '\n');
}

// Problems with the committed prebuilds; empty when all are current.
export function check() {
  const manifest = readManifest();
  const problems = [];
  for (const target of ALL_TARGETS) {
    const entry = manifest[target];
    const file = path.join(ROOT, 'prebuilds', addonPath(target));
    if (!entry) problems.push(`${target}: not in prebuilds/manifest.json`);
    else if (!fs.existsSync(file)) problems.push(`${target}: prebuilds/${addonPath(target)} is missing`);
    else if (sha256(fs.readFileSync(file)) !== entry.sha256) problems.push(`${target}: the binary is not the one the manifest records`);
    else if (inputsHash(target) !== entry.inputsSha256) problems.push(`${target}: built from other inputs than the current ones (stale)`);
  }
  for (const target of Object.keys(CLI_TARGETS)) {
    const key = `${target}/${CLI_NAME}`;
    const entry = manifest[key];
    const file = path.join(ROOT, 'prebuilds', target, cliFile(target));
    if (!entry) problems.push(`${key}: not in prebuilds/manifest.json`);
    else if (!fs.existsSync(file)) problems.push(`${key}: prebuilds/${target}/${cliFile(target)} is missing`);
    else if (sha256(fs.readFileSync(file)) !== entry.sha256) problems.push(`${key}: the binary is not the one the manifest records`);
    else if (cliInputsHash(target) !== entry.inputsSha256) problems.push(`${key}: built from other inputs than the current ones (stale)`);
  }
  return problems;
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  const [cmd, target] = process.argv.slice(2);
  if (cmd === 'record' && ALL_TARGETS.includes(target)) {
    recordTarget(target);
  } else if (cmd === 'check') {
    const problems = check();
    for (const p of problems) console.log(p);
    if (problems.length) {
      console.log('run `npm run prebuild:all` and commit prebuilds/');
      process.exit(1);
    }
    console.log(`prebuilds current: ${ALL_TARGETS.map((t) => `${t} (${inputFiles(t).length} inputs)`).join(', ')}; ${CLI_NAME} for each (${cliInputFiles('linux-x64').length} inputs)`);
  } else {
    console.error(`usage: manifest.mjs check | record <${ALL_TARGETS.join('|')}>`);
    process.exit(2);
  }
}
