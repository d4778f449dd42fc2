#!/usr/bin/env node
// Cross-builds the POSIX prebuilds with `zig c++` from binding.gyp's
// sources and defines (scripts/build/sources.mjs):
//
//   node scripts/prebuild/build.mjs [options] [target ...]
//     target           linux-x64 linux-arm64 darwin-x64 darwin-arm64
//                      linux-x64-musl linux-arm64-musl (default: all six)
//     --out=DIR        write DIR/<target>/simple-ipc.node (the musl ones:
//                      DIR/linux-<arch>/simple-ipc.musl.node) instead of prebuilds/
//                      (and leave prebuilds/manifest.json alone)
//     --define=NAME    one more preprocessor define (repeatable), e.g.
//                      NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED for the Electron
//                      headers check; only with --out
//
// Objects live under .cache/prebuild; every run compiles every source
// again, so the binary never depends on what was there. JOBS (default 2)
// compiles run at once.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT, compileDefines, gypList } from '../build/sources.mjs';
import { CACHE, uvIncludeDir, zigBinary } from './deps.mjs';
import { recordTarget } from './manifest.mjs';
import { ADDON_FILE, ZIG_TARGETS, addonPath } from './targets.mjs';

// lstat() for glibc < 2.33 targets (see the file).
const GLIBC_COMPAT = 'scripts/prebuild/glibc_compat.cc';

// Compile flags of one target: binding.gyp's cflags_cc and defines, plus
// what node-gyp adds for an addon (-fPIC, -O2, BUILDING_NODE_EXTENSION).
export function compileFlags(name, extraDefines = []) {
  const t = ZIG_TARGETS[name];
  const defines = [...compileDefines(t.os), 'BUILDING_NODE_EXTENSION', 'NDEBUG', ...extraDefines];
  return [
    '-target', t.zig,
    ...gypList('cflags_cc', t.os),
    '-O2', '-fPIC', '-fvisibility-inlines-hidden',
    // No checkout path in the binary: the same sources give the same bytes.
    `-ffile-prefix-map=${ROOT}=.`,
    ...defines.map((d) => `-D${d}`),
    // Anything newer than the deployment target, used without an
    // availability check, fails the build instead of the load on an older
    // macOS (the SDK headers mark each function's first version).
    ...(t.os === 'mac' ? ['-Werror=unguarded-availability'] : []),
    '-isystem', path.relative(ROOT, path.join(ROOT, 'node_modules', 'node-api-headers', 'include')),
    '-isystem', path.relative(ROOT, path.join(ROOT, 'node_modules', 'node-addon-api')),
    '-isystem', path.relative(ROOT, uvIncludeDir()),
  ];
}

// Link flags: Node-API and libuv stay undefined, to be bound to the loading
// process's napi_*/uv_* at load time; libc++ is linked in statically by Zig.
export function linkFlags(name) {
  const t = ZIG_TARGETS[name];
  const common = ['-target', t.zig, '-shared', '-s'];
  if (t.os === 'linux') {
    return [...common, ...gypList('ldflags', 'linux'), `-Wl,--version-script=${path.join('scripts', 'prebuild', 'linux-exports.map')}`];
  }
  // Zig 0.11's Mach-O linker takes no export list (and exports hidden
  // symbols too; check-binaries.mjs reports it). The install name is
  // fixed so that no checkout path ends up in the binary.
  const sdk = t.sdkFrom ? ['-L', path.relative(ROOT, libSystemStubDir(t.sdkFrom)), '-lSystem'] : [];
  return [...common, '-Wl,-undefined,dynamic_lookup', `-Wl,-install_name,@rpath/${ADDON_FILE}`, ...sdk];
}

// Zig picks its libSystem stub by the target's macOS major version and has
// none for 10.x; a target with sdkFrom links against that macOS's stub,
// given as libSystem.tbd. (Which of its symbols the binary may import is
// checked by check-binaries.mjs against what the older macOS exports.)
export function libSystemStubDir(version) {
  const dir = path.join(CACHE, `libsystem-${version}`);
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(zigLibDir(), 'libc', 'darwin', `libSystem.${version}.tbd`), path.join(dir, 'libSystem.tbd'));
  return dir;
}

const zigLibDir = () => path.join(path.dirname(zigBinary()), 'lib');

// The SDK headers of an sdkFrom target, in the order Zig gives them for
// that macOS: as C_INCLUDE_PATH/CPLUS_INCLUDE_PATH they reach every
// compile `zig c++` runs, ours and the libc++ it builds, after libc++'s
// own headers (Zig has none of its own for a 10.x target).
function sdkIncludePath(t) {
  const include = path.join(zigLibDir(), 'libc', 'include');
  const arch = t.zig.split('-')[0];
  return [`${arch}-macos.${t.sdkFrom}-none`, `any-macos.${t.sdkFrom}-any`, 'any-macos-any'].map((d) => path.join(include, d)).join(path.delimiter);
}

// Zig's global cache (~/.cache/zig unless ZIG_GLOBAL_CACHE_DIR says
// otherwise) keeps the libc++ it builds once per target, minutes of work
// on two cores; it is keyed by target and flags, so it never changes what
// is linked. (The include path of an sdkFrom target is not in that key,
// but such a target cannot build at all without it.) The caller's own
// include path variables are dropped: they would reach every compile.
export function zigEnv(name) {
  const t = ZIG_TARGETS[name];
  const env = { ...process.env, ZIG_LOCAL_CACHE_DIR: path.join(CACHE, 'zig-local') };
  delete env.C_INCLUDE_PATH;
  delete env.CPLUS_INCLUDE_PATH;
  delete env.CPATH;
  if (t.sdkFrom) env.C_INCLUDE_PATH = env.CPLUS_INCLUDE_PATH = sdkIncludePath(t);
  return env;
}

// Runs one `zig c++` command for a target; resolves with its output,
// rejects with it on failure.
function run(name, args, label) {
  return new Promise((resolve, reject) => {
    const child = spawn(zigBinary(), ['c++', ...args], { cwd: ROOT, env: zigEnv(name), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${label} failed (exit ${code}):\n${out}`))));
  });
}

// At most `jobs` of the thunks run at once; rejects on the first failure
// after the running ones have finished.
async function pool(thunks, jobs) {
  const results = [];
  let next = 0;
  let failure = null;
  async function worker() {
    while (next < thunks.length && !failure) {
      const i = next++;
      try {
        results[i] = await thunks[i]();
      } catch (e) {
        failure ??= e;
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(jobs, thunks.length) }, worker));
  if (failure) throw failure;
  return results;
}

function objectPath(name, variant, source) {
  return path.join(CACHE, 'obj', `${name}${variant}`, source.replace(/\.cc$/, '.o'));
}

// Builds the given targets, one after the other: a target's sources
// compile `jobs` at a time, then its link (which may first build libc++
// for a new target) runs while the next target compiles.
// Returns { outputs: { target: file }, warnings }.
export async function build(targets, { outDir = path.join(ROOT, 'prebuilds'), defines = [], jobs = 2 } = {}) {
  const variant = defines.length ? `-${defines.join('-').toLowerCase()}` : '';
  let warnings = 0;
  const outputs = {};
  const links = [];
  for (const name of targets) {
    const flags = compileFlags(name, defines);
    const sources = [...gypList('sources', ZIG_TARGETS[name].os), ...(ZIG_TARGETS[name].glibc ? [GLIBC_COMPAT] : [])];
    const started = Date.now();
    await pool(
      sources.map((source) => async () => {
        const obj = objectPath(name, variant, source);
        fs.mkdirSync(path.dirname(obj), { recursive: true });
        fs.rmSync(obj, { force: true });
        const out = await run(name, [...flags, '-c', source, '-o', obj], `${name}: ${source}`);
        if (/warning:/.test(out)) {
          warnings += (out.match(/warning:/g) || []).length;
          process.stdout.write(`[prebuild] ${name}: ${source}:\n${out}`);
        }
      }),
      jobs,
    );
    console.log(`[prebuild] ${name}: compiled ${sources.length} sources in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    const file = path.join(outDir, addonPath(name));
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const objects = sources.map((s) => objectPath(name, variant, s));
    const linkStarted = Date.now();
    // Settled at once: a failed link is reported after the other targets,
    // never as an unhandled rejection while they compile.
    links.push(
      run(name, [...linkFlags(name), '-o', file, ...objects], `${name}: link`).then(
        () => {
          outputs[name] = file;
          console.log(`[prebuild] ${path.relative(ROOT, file)}: ${fs.statSync(file).size} bytes, linked in ${((Date.now() - linkStarted) / 1000).toFixed(0)} s`);
          return null;
        },
        (error) => error,
      ),
    );
  }
  const failures = (await Promise.all(links)).filter((e) => e !== null);
  if (failures.length) throw new Error(failures.map((e) => e.message).join('\n'));
  console.log(`[prebuild] ${warnings} compiler warnings`);
  return { outputs, warnings };
}

async function main() {
  const args = process.argv.slice(2);
  const outArg = args.find((a) => a.startsWith('--out='));
  const defines = args.filter((a) => a.startsWith('--define=')).map((a) => a.slice(9));
  const unknown = args.filter((a) => a.startsWith('--') && !a.startsWith('--out=') && !a.startsWith('--define='));
  let targets = args.filter((a) => !a.startsWith('--'));
  if (targets.length === 0) targets = Object.keys(ZIG_TARGETS);
  const bad = targets.filter((t) => !ZIG_TARGETS[t]);
  if (unknown.length || bad.length || (defines.length && !outArg)) {
    console.error(`usage: build.mjs [--out=DIR [--define=NAME]...] [${Object.keys(ZIG_TARGETS).join('|')}]...`);
    process.exit(2);
  }
  try {
    zigBinary();
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
  const started = Date.now();
  const outDir = outArg ? path.resolve(outArg.slice(6)) : undefined;
  const { outputs } = await build(targets, { outDir, defines, jobs: Number(process.env.JOBS) || 2 });
  if (!outDir) for (const name of targets) recordTarget(name, outputs[name]);
  console.log(`[prebuild] ${targets.length} targets in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  main().catch((e) => {
    console.error(e.message);
    process.exit(1);
  });
}
