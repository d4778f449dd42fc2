#!/usr/bin/env node
// The native test suite (native/test) linked statically against musl with
// `zig c++`, and run here: the code of the musl prebuilds, on musl's
// libc, without an Alpine machine (a static executable needs no C library
// from the system it runs on):
//
//   node scripts/prebuild/musl-tests.mjs [x64] [arm64] [--addon=FILE]   (default: x64)
//
// Then the x64 musl prebuild itself (prebuilds/linux-x64/simple-ipc.musl.node,
// or --addon=FILE) is loaded by musl's own dynamic loader, from a small C
// program built with Debian's musl-gcc that stands in for Node.js: it
// defines every napi_*/uv_* function the file imports (as stubs), dlopen()s
// it with RTLD_NOW (musl resolves libc.so and every import, the C++
// runtime's constructors run) and calls node_api_module_get_api_version_v1.
// Skipped, saying so, without musl-gcc or without the file.
//
// arm64 runs under qemu-aarch64. The tests are the ones CMakeLists.txt
// builds (the server tests make one program); the library is binding.gyp's
// sources without the N-API layer. Prints each program's tail and a total
// line "N passed, M failed"; exits 1 if any test failed or a program did
// not run to its end.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT, gypList } from '../build/sources.mjs';
import { CACHE, zigBinary } from './deps.mjs';

const ARCHES = { x64: { zig: 'x86_64-linux-musl', run: [] }, arm64: { zig: 'aarch64-linux-musl', run: ['qemu-aarch64'] } };
const LIBRARY = gypList('sources', 'linux').filter((s) => !s.startsWith('native/addon/'));
const SERVER_TEST = ['server_test_main', 'server_framing_test', 'server_rendezvous_test', 'server_limits_test', 'server_faults_test', 'server_peer_test', 'server_lifecycle_test', 'server_load_test', 'server_caller_test'];
const PROGRAMS = {
  core_test: ['core_test'],
  conversation_test: ['conversation_test'],
  connect_policy_test: ['connect_policy_test'],
  exchange_test: ['exchange_test'],
  client_test: ['client_test'],
  server_test: SERVER_TEST,
  inherited_listener_test: ['inherited_listener_test'],
};
const FLAGS = ['-std=c++17', '-O1', '-g0', '-Wall', '-Wextra', '-Wpedantic', '-fno-omit-frame-pointer'];

// Every test file is in one program: a new one cannot be left out silently.
const listed = new Set(Object.values(PROGRAMS).flat());
const unlisted = fs.readdirSync(path.join(ROOT, 'native', 'test')).filter((f) => /_test(_main)?\.cc$/.test(f) && !listed.has(f.slice(0, -3)));
if (unlisted.length) {
  console.error(`musl-tests: native/test files in no program: ${unlisted.join(' ')} (add them to PROGRAMS)`);
  process.exit(1);
}

function zig(target, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(zigBinary(), ['c++', '-target', target, ...args], { cwd: ROOT, env: { ...process.env, ZIG_LOCAL_CACHE_DIR: path.join(CACHE, 'zig-local') }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`zig c++ ${args.join(' ')}:\n${out}`))));
  });
}

async function pool(thunks, jobs) {
  let next = 0;
  const worker = async () => {
    while (next < thunks.length) await thunks[next++]();
  };
  await Promise.all(Array.from({ length: jobs }, worker));
}

async function build(arch) {
  const { zig: target } = ARCHES[arch];
  const dir = path.join(CACHE, 'musl-tests', arch);
  const object = (src) => path.join(dir, 'obj', src.replace(/\.cc$/, '.o'));
  const sources = [...LIBRARY, ...Object.values(PROGRAMS).flat().map((t) => `native/test/${t}.cc`)];
  await pool(
    sources.map((src) => async () => {
      fs.mkdirSync(path.dirname(object(src)), { recursive: true });
      const out = await zig(target, [...FLAGS, '-c', src, '-o', object(src)]);
      if (/warning:/.test(out)) process.stdout.write(out);
    }),
    Number(process.env.JOBS) || 2,
  );
  const programs = {};
  for (const [name, files] of Object.entries(PROGRAMS)) {
    const file = path.join(dir, name);
    await zig(target, ['-static', '-o', file, ...files.map((t) => object(`native/test/${t}.cc`)), ...LIBRARY.map(object)]);
    programs[name] = file;
  }
  return programs;
}

// The musl loader test of the x64 prebuild: [passed, failed] (0, 0: skipped).
function loadAddonOnMusl(addon) {
  const loader = '/lib/ld-musl-x86_64.so.1';
  const cc = spawnSync('sh', ['-c', 'command -v musl-gcc'], { encoding: 'utf8' }).stdout.trim();
  if (!fs.existsSync(addon) || !cc || !fs.existsSync(loader)) {
    console.log(`[musl-tests] loading the musl addon: skipped (${!fs.existsSync(addon) ? `no ${path.relative(ROOT, addon)}: npm run prebuild:all` : 'no musl-gcc or musl loader: apt-get install musl-tools'})`);
    return [0, 0];
  }
  const imports = spawnSync('readelf', ['-W', '--dyn-syms', addon], { encoding: 'utf8' })
    .stdout.split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[6] === 'UND' && /^(napi|node_api|uv)_/.test(f[7] ?? ''))
    .map((f) => f[7]);
  const dir = path.join(CACHE, 'musl-tests', 'load');
  fs.mkdirSync(dir, { recursive: true });
  const program = [
    '#include <dlfcn.h>',
    '#include <stdio.h>',
    // Stubs for what Node.js would provide; never called here.
    ...imports.map((name) => `int ${name}(void) { return 9; }`),
    'int main(int argc, char** argv) {',
    '  void* h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);',
    '  if (!h) { printf("dlopen: %s\\n", dlerror()); return 1; }',
    '  int (*version)(void) = (int (*)(void))dlsym(h, "node_api_module_get_api_version_v1");',
    '  if (!version || !dlsym(h, "napi_register_module_v1")) { printf("entry points missing\\n"); return 1; }',
    '  printf("Node-API version %d\\n", version());',
    '  return version() == 8 ? 0 : 1;',
    '}',
    '',
  ].join('\n');
  fs.writeFileSync(path.join(dir, 'load.c'), program);
  const built = spawnSync(cc, ['-rdynamic', '-o', path.join(dir, 'load'), path.join(dir, 'load.c')], { encoding: 'utf8' });
  if (built.status !== 0) {
    console.log(`[musl-tests] loading the musl addon: musl-gcc failed:\n${built.stderr}`);
    return [0, 1];
  }
  const r = spawnSync(path.join(dir, 'load'), [addon], { encoding: 'utf8' });
  const ok = r.status === 0;
  console.log(`[musl-tests] ${path.relative(ROOT, addon)} loaded by ${loader} (${imports.length} napi_*/uv_* stubbed): ${ok ? 'ok' : 'FAILED'}: ${(r.stdout + r.stderr).trim()}`);
  return ok ? [1, 0] : [0, 1];
}

async function main() {
  const addonArg = process.argv.find((a) => a.startsWith('--addon='));
  const addon = addonArg ? path.resolve(addonArg.slice(8)) : path.join(ROOT, 'prebuilds', 'linux-x64', 'simple-ipc.musl.node');
  const arches = process.argv.slice(2).filter((a) => !a.startsWith('--addon='));
  if (!arches.length) arches.push('x64');
  if (arches.some((a) => !ARCHES[a])) {
    console.error('usage: musl-tests.mjs [x64] [arm64] [--addon=FILE]');
    process.exit(2);
  }
  let passed = 0;
  let failed = 0;
  for (const arch of arches) {
    const started = Date.now();
    const programs = await build(arch);
    console.log(`[musl-tests] ${arch}: built ${Object.keys(programs).length} static programs (${ARCHES[arch].zig}) in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    for (const [name, file] of Object.entries(programs)) {
      const file_ = spawnSync('file', [file], { encoding: 'utf8' }).stdout.trim();
      const [cmd, ...pre] = [...ARCHES[arch].run, file];
      const r = spawnSync(cmd, pre, { encoding: 'utf8', timeout: 900000, maxBuffer: 64 << 20 });
      const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
      const line = /^(\d+) passed, (\d+) failed$/m.exec(out);
      const p = line ? Number(line[1]) : 0;
      let f = line ? Number(line[2]) : 0;
      if (r.status !== 0 && f === 0) f = 1; // a crash, a timeout
      passed += p;
      failed += f;
      console.log(`[musl-tests] ${arch} ${name}: ${p} passed, ${f} failed (exit ${r.status ?? r.signal})${/statically linked/.test(file_) ? '' : ` NOT STATIC: ${file_}`}`);
      if (f) console.log(out.split('\n').filter((l) => !/^\[ (RUN  | OK  )\]/.test(l)).slice(-40).join('\n'));
    }
  }
  const [p, f] = loadAddonOnMusl(addon);
  passed += p;
  failed += f;
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
