#!/usr/bin/env node
// Checks each prebuilt binary for what the host can verify without
// running it on its platform:
//
//   node scripts/prebuild/check-binaries.mjs [--dir=DIR] [target ...]
//
//  - every one: the file format and CPU its directory promises (ELF
//    x86-64/AArch64, Mach-O x86_64/arm64, PE32+ x86-64), and it exports
//    only Node-API registration (targets.mjs EXPORTS).
//  - Linux: no glibc symbol version newer than 2.28, no GLIBCXX_/CXXABI_
//    newer than GCC 8's, no libstdc++/libc++ dependency (linked in), only
//    napi_*/uv_* left for Node to provide. musl: no versioned symbol at all, only
//    libc.so needed, every import Node-API, libuv or a symbol musl's libc exports.
//  - macOS: the minimum macOS it was built for (targets.mjs), and for
//    darwin-x64, built with macOS 11's SDK for 10.15, that everything it
//    imports from libSystem exists in 10.15; it links only libSystem
//    (and libc++ if any), and the only symbols left to the loading process
//    (dynamic lookup) are napi_*/uv_*; the macOS code paths are the ones
//    compiled in: poll() poller, getpeereid, LOCAL_PEERPID, SO_NOSIGPIPE,
//    104-byte sun_path (from the imports, and a probe compiled for the
//    target that includes the socket code and tests the macros it saw).
//    The same probe checks the Linux branches of the Linux prebuilds.
//  - the native client simple-ipc-send beside each addon (cli.mjs): its
//    format and CPU, at most CLI_MAX_BYTES; Linux: a static executable
//    (no interpreter, no shared library: no glibc floor at all); macOS:
//    its minimum macOS, only libSystem linked, and for darwin-x64 only
//    imports that exist in 10.15; Windows: a console program importing
//    only system DLLs.
// Prints one line per fact; exits 1 if any check fails.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT } from '../build/sources.mjs';
import { compileFlags, zigEnv } from './build.mjs';
import { zigBinary } from './deps.mjs';
import { ALL_TARGETS, CLI_MAX_BYTES, CLI_TARGETS, EXPORTS, LINUX_FLOORS, WIN_TARGET, ZIG_TARGETS, addonPath, cliFile } from './targets.mjs';

const sh = (cmd, args, input) => execFileSync(cmd, args, { encoding: 'utf8', input, maxBuffer: 64 << 20, cwd: ROOT });
const versionLE = (a, b) => {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    if ((pa[i] || 0) !== (pb[i] || 0)) return (pa[i] || 0) < (pb[i] || 0);
  }
  return true;
};

function checkElf(target, file, t, ok, bad) {
  const header = sh('readelf', ['-h', file]);
  const machine = /Machine:\s+(.*)/.exec(header)[1].trim();
  const expected = t.elfMachine === 'X86-64' ? 'Advanced Micro Devices X86-64' : 'AArch64';
  if (/Class:\s+ELF64/.test(header) && /Type:\s+DYN/.test(header) && machine === expected) ok(`ELF64 shared object, ${machine}`);
  else bad(`not an ELF64 shared object for ${expected}: ${machine}`);
  const syms = sh('readelf', ['-W', '--dyn-syms', file]).split('\n');
  const versions = {};
  const undefinedPlain = [];
  const exported = [];
  for (const line of syms) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || !/^\d+:$/.test(f[0])) continue;
    const [name, version] = f[7].split(/@+/);
    if (f[6] === 'UND') {
      if (version) {
        const m = /^([A-Z]+)_([\d.]+)/.exec(version.replace(/\s*\(\d+\)$/, ''));
        if (m && (!versions[m[1]] || !versionLE(m[2], versions[m[1]]))) versions[m[1]] = m[2];
      } else if (name && f[4] !== 'WEAK') undefinedPlain.push(name);
    } else if (f[4] === 'GLOBAL' || f[4] === 'WEAK') exported.push(name);
  }
  if (t.libc === 'musl') {
    checkMuslImports(versions, undefinedPlain, ok, bad);
    checkExports(exported, ok, bad);
    const needed = [...sh('readelf', ['-d', file]).matchAll(/\(NEEDED\)\s+Shared library: \[(.*)\]/g)].map((m) => m[1]);
    if (needed.join(' ') === 'libc.so') ok('shared libraries: libc.so only (musl\'s loader serves that name itself; C++ runtime linked in)');
    else bad(`shared libraries: ${needed.join(' ') || 'none'}, not libc.so alone`);
    return;
  }
  for (const [lib, floor] of Object.entries(LINUX_FLOORS)) {
    const need = versions[lib];
    if (!need) ok(`needs no ${lib}_ symbol versions`);
    else if (versionLE(need, floor)) ok(`newest ${lib}_ version needed: ${need} (floor ${floor})`);
    else bad(`needs ${lib}_${need}, newer than the floor ${floor}`);
  }
  const notNapi = undefinedPlain.filter((s) => !fromNode(s));
  if (notNapi.length) bad(`unversioned imports other than Node-API and libuv: ${notNapi.join(' ')}`);
  else ok(`left for Node to provide: ${undefinedPlain.length} napi_*/uv_* functions, nothing else`);
  checkExports(exported, ok, bad);
  const needed = [...sh('readelf', ['-d', file]).matchAll(/\(NEEDED\)\s+Shared library: \[(.*)\]/g)].map((m) => m[1]);
  const cxx = needed.filter((n) => /libstdc\+\+|libc\+\+|libgcc_s/.test(n));
  if (cxx.length) bad(`links a C++ runtime dynamically: ${cxx.join(' ')}`);
  else ok(`shared libraries: ${needed.join(' ')} (C++ runtime linked in)`);
}

// What the loading process (Node.js, Electron) provides: Node-API, and
// libuv, whose 1.x ABI is stable and whose functions Node exports for
// addons (the JS-thread accept and completion paths watch descriptors on
// the loop napi_get_uv_event_loop gives: docs/design.md#threads).
function fromNode(symbol) {
  return /^(napi|node_api|uv)_/.test(symbol);
}

// A musl file has no symbol versions: every import must be Node-API or a
// symbol that musl's libc exports (the list Zig builds musl's libc.so
// stub from, lib/libc/musl/libc.S).
function checkMuslImports(versions, undefinedPlain, ok, bad) {
  if (Object.keys(versions).length) bad(`versioned imports (glibc?): ${Object.entries(versions).map(([l, v]) => `${l}_${v}`).join(' ')}`);
  else ok('no versioned imports (no glibc symbol)');
  const libcS = fs.readFileSync(path.join(path.dirname(zigBinary()), 'lib', 'libc', 'musl', 'libc.S'), 'utf8');
  const musl = new Set([...libcS.matchAll(/^([A-Za-z_][\w.$]*):$/gm)].map((m) => m[1]));
  const napi = undefinedPlain.filter(fromNode);
  const others = undefinedPlain.filter((s) => !napi.includes(s));
  const unknown = others.filter((s) => !musl.has(s));
  if (musl.size < 1000) bad(`musl's symbol list has only ${musl.size} entries`);
  else if (unknown.length) bad(`imports that musl's libc does not export: ${unknown.join(' ')}`);
  else ok(`imports: ${napi.length} napi_*/uv_* left for Node, ${others.length} from musl's libc (all among its ${musl.size} exports)`);
}

function checkExports(exported, ok, bad) {
  const names = exported.map((s) => s.replace(/^_/, '')).filter((s) => s).sort();
  if (names.join(' ') === [...EXPORTS].sort().join(' ')) ok(`exports only ${names.join(' ')}`);
  else bad(`exports ${names.join(' ') || 'nothing'}, not only ${EXPORTS.join(' ')}`);
}

function checkMacho(target, file, t, ok, bad) {
  const headers = sh('llvm-objdump', ['--macho', '--private-headers', file]);
  const cpu = t.machoArch === 'x86_64' ? 'X86_64' : 'ARM64';
  const mh = /magic\s+cputype[^\n]*\n\s*(\S+)\s+(\S+)\s+\S+\s+\S+\s+(\S+)/.exec(headers);
  if (mh && mh[1] === 'MH_MAGIC_64' && mh[2] === cpu && /DYLIB|BUNDLE/.test(mh[3])) ok(`Mach-O 64-bit ${mh[3]}, ${mh[2]}`);
  else bad(`not a 64-bit Mach-O dylib for ${cpu}: ${mh ? mh.slice(1).join(' ') : 'no header'}`);
  const minos = /LC_BUILD_VERSION[\s\S]*?minos\s+([\d.]+)/.exec(headers)?.[1] ?? /LC_VERSION_MIN_MACOSX[\s\S]*?version\s+([\d.]+)/.exec(headers)?.[1];
  if (minos && versionLE(minos, t.macos) && versionLE(t.macos, minos)) ok(`minimum macOS ${minos}`);
  else bad(`minimum macOS ${minos}, expected ${t.macos}`);
  const installName = /LC_ID_DYLIB[\s\S]*?name (\S+)/.exec(headers)?.[1];
  if (installName && !installName.includes(ROOT)) ok(`install name ${installName} (no build path)`);
  else bad(`install name ${installName} names the build directory`);
  const dylibs = [...sh('llvm-objdump', ['--macho', '--dylibs-used', file]).matchAll(/^\s+(\S+) \(compat/gm)]
    .map((m) => m[1])
    .filter((d) => d !== installName);
  const otherLibs = dylibs.filter((d) => !/^\/usr\/lib\/(libSystem\.B|libc\+\+\.1|libc\+\+abi)\.dylib$/.test(d));
  if (dylibs.length && !otherLibs.length) ok(`links ${dylibs.join(' ')} only`);
  else bad(`links ${dylibs.join(' ')}`);
  const undef = sh('llvm-nm', ['-m', '-u', file]).split('\n').filter(Boolean);
  const lookedUp = undef.filter((l) => /dynamically looked up/.test(l)).map((l) => /external (\S+)/.exec(l)[1]);
  const fromElsewhere = undef.filter((l) => !/dynamically looked up/.test(l) && !/\(from (libSystem|libc\+\+|libc\+\+abi)\)/.test(l));
  const notNapi = lookedUp.filter((s) => !fromNode(s.replace(/^_/, '')));
  if (notNapi.length || fromElsewhere.length) bad(`imports outside Node-API/libuv/libSystem: ${[...notNapi, ...fromElsewhere].join(' ')}`);
  else ok(`imports: ${lookedUp.length} napi_*/uv_* looked up in the loading process, ${undef.length - lookedUp.length} from libSystem/libc++`);
  // Zig 0.11's Mach-O linker exports hidden symbols as well (libc++ and
  // ours), so the export trie is checked for what matters: both Node-API
  // entry points are there, and no other napi_* that would shadow Node's.
  const trie = sh('llvm-objdump', ['--macho', '--exports-trie', file]).split('\n').map((l) => /^0x[0-9A-F]+\s+_(\S+)/.exec(l)?.[1]).filter(Boolean);
  const entry = trie.filter((n) => /^(napi|node_api)_/.test(n)).sort();
  if (entry.join(' ') === [...EXPORTS].sort().join(' ')) {
    ok(`exports ${entry.join(' ')} (and ${trie.length - entry.length} other symbols: Zig 0.11 ignores hidden visibility here; harmless under two-level namespaces, but not what the Linux files do)`);
  } else bad(`Node-API exports are ${entry.join(' ') || 'none'}, not ${EXPORTS.join(' ')}`);
  if (t.sdkFrom) checkImportsExistIn(t.macos, undef, ok, bad);
  const imported = new Set(undef.map((l) => /external (\S+)/.exec(l)?.[1]));
  const wantImports = ['_poll', '_pipe', '_getpeereid', '_getsockopt', '_setsockopt'];
  const missing = wantImports.filter((s) => !imported.has(s));
  const epoll = [...imported].filter((s) => /epoll|eventfd/.test(s || ''));
  if (!missing.length && !epoll.length) ok(`macOS code paths by their imports: ${wantImports.join(' ')}; no epoll/eventfd`);
  else bad(`imports: missing ${missing.join(' ') || '-'}, Linux-only ${epoll.join(' ') || '-'}`);
}

// A file built with a newer macOS's SDK than its minimum (targets.mjs
// sdkFrom) must import from libSystem only symbols that the minimum macOS
// exports: those in the list checked against that macOS's SDK.
function checkImportsExistIn(macos, undef, ok, bad) {
  const listFile = path.join('scripts', 'prebuild', `macos-${macos}-libsystem.txt`);
  const known = new Set(fs.readFileSync(path.join(ROOT, listFile), 'utf8').split('\n').filter((l) => l && !l.startsWith('#')));
  const fromSystem = undef.filter((l) => /\(from libSystem\)/.test(l)).map((l) => /external (\S+)/.exec(l)[1]);
  const unknown = fromSystem.filter((s) => !known.has(s));
  if (unknown.length) bad(`imports from libSystem not known to exist in macOS ${macos}: ${unknown.join(' ')} (${listFile})`);
  else ok(`all ${fromSystem.length} libSystem imports exist in macOS ${macos} (${listFile})`);
}

// The socket code's #if branches, as the target's headers decide them: a
// probe that includes socket_util.cc itself and then tests the macros it
// saw, and the size of sun_path, compiled for the target (-c: `zig c++`
// builds libc++ first for -E or -fsyntax-only, minutes per target).
function checkPlatformMacros(target, t, ok, bad) {
  const mac = t.os === 'mac';
  const want = mac
    ? { SO_NOSIGPIPE: true, LOCAL_PEERPID: true, SO_PEERCRED: false, __APPLE__: true, __linux__: false }
    : { SO_NOSIGPIPE: false, LOCAL_PEERPID: false, MSG_NOSIGNAL: true, SO_PEERCRED: true, __APPLE__: false, __linux__: true };
  const sunPath = mac ? 104 : 108;
  const probe = [
    `#include "${path.join(ROOT, 'native', 'posix', 'socket_util.cc')}"`,
    '#include <sys/un.h>',
    ...Object.entries(want).map(([m, on]) => `#if ${on ? '!' : ''}defined(${m})\n#error "${m} is ${on ? 'not ' : ''}defined"\n#endif`),
    `static_assert(sizeof(sockaddr_un{}.sun_path) == ${sunPath}, "sun_path is not ${sunPath} bytes");`,
    '',
  ].join('\n');
  const dir = path.join(ROOT, '.cache', 'prebuild', 'probe');
  fs.mkdirSync(dir, { recursive: true });
  const src = path.join(dir, `${target}.cc`);
  fs.writeFileSync(src, probe);
  try {
    execFileSync(zigBinary(), ['c++', ...compileFlags(target), '-c', src, '-o', path.join(dir, `${target}.o`)], {
      cwd: ROOT, env: zigEnv(target), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'],
    });
    const on = Object.keys(want).filter((m) => want[m]);
    ok(`socket_util.cc, compiled for ${t.zig}, sees ${on.join(' ')} defined and ${Object.keys(want).filter((m) => !want[m]).join(' ')} not: its ${mac ? 'SO_NOSIGPIPE, getpeereid + LOCAL_PEERPID' : 'MSG_NOSIGNAL, SO_PEERCRED'} branches are the ones built`);
    ok(`sun_path is ${sunPath} bytes for this target`);
  } catch (e) {
    const errors = String(e.stderr || e.message).split('\n').filter((l) => /error:/.test(l));
    bad(`platform probe for ${t.zig}: ${errors.join('; ') || e.message}`);
  }
}

function checkPe(file, ok, bad) {
  const b = fs.readFileSync(file);
  const pe = b.readUInt32LE(0x3c);
  const isDll = b.toString('latin1', 0, 2) === 'MZ' && b.toString('latin1', pe, pe + 4) === 'PE\0\0' && (b.readUInt16LE(pe + 22) & 0x2000) !== 0;
  const machine = b.readUInt16LE(pe + 4);
  const magic = b.readUInt16LE(pe + 24);
  if (isDll && machine === 0x8664 && magic === 0x20b) ok('PE32+ DLL, x86-64');
  else bad(`not a PE32+ x86-64 DLL (machine 0x${machine.toString(16)}, optional header 0x${magic.toString(16)})`);
  if (b.includes('napi_register_module_v1')) ok('names napi_register_module_v1');
  else bad('does not name napi_register_module_v1');
}

// The native client of a target (cli.mjs).
function checkCli(target, file, ok, bad) {
  const t = CLI_TARGETS[target];
  const size = fs.statSync(file).size;
  if (size <= CLI_MAX_BYTES) ok(`${size} bytes (at most ${CLI_MAX_BYTES})`);
  else bad(`${size} bytes, over ${CLI_MAX_BYTES}`);
  if (t.os === 'linux') {
    const header = sh('readelf', ['-h', file]);
    const machine = /Machine:\s+(.*)/.exec(header)[1].trim();
    const expected = t.elfMachine === 'X86-64' ? 'Advanced Micro Devices X86-64' : 'AArch64';
    if (/Class:\s+ELF64/.test(header) && /Type:\s+EXEC/.test(header) && machine === expected) ok(`ELF64 executable, ${machine}`);
    else bad(`not an ELF64 executable for ${expected}: ${machine}`);
    const interp = /Requesting program interpreter/.test(sh('readelf', ['-l', file]));
    const dynamic = !/There is no dynamic section/.test(sh('readelf', ['-d', file]));
    if (!interp && !dynamic) ok('statically linked: no interpreter, no shared library, so no glibc version needed');
    else bad(`not static: ${interp ? 'has a program interpreter' : ''} ${dynamic ? 'has a dynamic section' : ''}`);
  } else if (t.os === 'mac') {
    const headers = sh('llvm-objdump', ['--macho', '--private-headers', file]);
    const cpu = t.machoArch === 'x86_64' ? 'X86_64' : 'ARM64';
    const mh = /magic\s+cputype[^\n]*\n\s*(\S+)\s+(\S+)\s+\S+\s+\S+\s+(\S+)/.exec(headers);
    if (mh && mh[1] === 'MH_MAGIC_64' && mh[2] === cpu && mh[3] === 'EXECUTE') ok(`Mach-O 64-bit executable, ${mh[2]}`);
    else bad(`not a 64-bit Mach-O executable for ${cpu}: ${mh ? mh.slice(1).join(' ') : 'no header'}`);
    const minos = /LC_BUILD_VERSION[\s\S]*?minos\s+([\d.]+)/.exec(headers)?.[1] ?? /LC_VERSION_MIN_MACOSX[\s\S]*?version\s+([\d.]+)/.exec(headers)?.[1];
    if (minos && versionLE(minos, t.macos) && versionLE(t.macos, minos)) ok(`minimum macOS ${minos}`);
    else bad(`minimum macOS ${minos}, expected ${t.macos}`);
    const dylibs = [...sh('llvm-objdump', ['--macho', '--dylibs-used', file]).matchAll(/^\s+(\S+) \(compat/gm)].map((m) => m[1]);
    if (dylibs.length && dylibs.every((d) => d === '/usr/lib/libSystem.B.dylib')) ok(`links ${dylibs.join(' ')} only (libc++ linked in)`);
    else bad(`links ${dylibs.join(' ')}`);
    const undef = sh('llvm-nm', ['-m', '-u', file]).split('\n').filter(Boolean);
    const elsewhere = undef.filter((l) => !/\(from libSystem\)/.test(l));
    if (elsewhere.length) bad(`imports from outside libSystem: ${elsewhere.join('; ')}`);
    else ok(`imports: ${undef.length} symbols, all from libSystem`);
    if (t.sdkFrom) checkImportsExistIn(t.macos, undef, ok, bad);
  } else {
    const b = fs.readFileSync(file);
    const pe = b.readUInt32LE(0x3c);
    const characteristics = b.readUInt16LE(pe + 22);
    const isExe = b.toString('latin1', 0, 2) === 'MZ' && b.toString('latin1', pe, pe + 4) === 'PE\0\0' && (characteristics & 0x2000) === 0 && (characteristics & 0x2) !== 0;
    const machine = b.readUInt16LE(pe + 4);
    const magic = b.readUInt16LE(pe + 24);
    const subsystem = b.readUInt16LE(pe + 24 + 68);
    if (isExe && machine === 0x8664 && magic === 0x20b && subsystem === 3) ok('PE32+ console executable, x86-64');
    else bad(`not a PE32+ x86-64 console executable (machine 0x${machine.toString(16)}, optional header 0x${magic.toString(16)}, subsystem ${subsystem})`);
    const dlls = [...sh('llvm-objdump', ['-p', file]).matchAll(/DLL Name: (\S+)/g)].map((m) => m[1]);
    const system = /^(KERNEL32|ADVAPI32|SHELL32|msvcrt|ucrtbase|api-ms-win-[\w-]+)\.dll$/i;
    const others = dlls.filter((d) => !system.test(d));
    if (dlls.length && !others.length) ok(`imports system DLLs only: ${dlls.join(' ')}`);
    else bad(`imports ${others.join(' ') || 'nothing'} beside the system DLLs`);
  }
}

export function checkTarget(target, dir = path.join(ROOT, 'prebuilds')) {
  const file = path.join(dir, addonPath(target));
  const lines = [];
  let failed = false;
  const ok = (m) => lines.push(`  ok   ${m}`);
  const bad = (m) => {
    failed = true;
    lines.push(`  FAIL ${m}`);
  };
  if (!fs.existsSync(file)) bad(`no ${file}`);
  else if (target === WIN_TARGET) checkPe(file, ok, bad);
  else {
    const t = ZIG_TARGETS[target];
    if (t.os === 'linux') checkElf(target, file, t, ok, bad);
    else checkMacho(target, file, t, ok, bad);
    checkPlatformMacros(target, t, ok, bad);
  }
  if (CLI_TARGETS[target]) {
    const cli = path.join(dir, target, cliFile(target));
    lines.push(`${target}: ${path.relative(ROOT, cli)}`);
    if (!fs.existsSync(cli)) bad(`no ${cli}`);
    else checkCli(target, cli, ok, bad);
  }
  return { failed, text: `${target}: ${path.relative(ROOT, file)}\n${lines.join('\n')}` };
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  const args = process.argv.slice(2);
  const dirArg = args.find((a) => a.startsWith('--dir='));
  let targets = args.filter((a) => !a.startsWith('--'));
  if (!targets.length) targets = ALL_TARGETS;
  let failed = 0;
  for (const target of targets) {
    const r = checkTarget(target, dirArg ? path.resolve(dirArg.slice(6)) : undefined);
    console.log(r.text);
    if (r.failed) failed++;
  }
  console.log(`${targets.length - failed} of ${targets.length} prebuilds pass`);
  process.exit(failed ? 1 : 0);
}
