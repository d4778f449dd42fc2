#!/usr/bin/env node
// Builds the native command-line client, simple-ipc-send (native/cli,
// docs/cli.md#native-client), for every prebuild platform with `zig c++`,
// or for this machine with its own C++ compiler:
//
//   node scripts/prebuild/cli.mjs [target ...]     prebuilds/<target>/simple-ipc-send[.exe]
//                                                  (default: all five; recorded in the manifest)
//   node scripts/prebuild/cli.mjs --host --out=DIR DIR/simple-ipc-send with $CXX (default c++):
//                                                  the tests' build, and any platform without a prebuild
//   node scripts/prebuild/cli.mjs --out=DIR [target ...]   zig builds into DIR/<target>/ (not recorded)
//
// How each is linked, and why:
//  - Linux: fully static against musl (Zig's), so the program needs no C
//    library of the machine at all: no glibc floor, and the same file runs
//    on glibc and on musl (Alpine) systems. Nothing to load at start is
//    also what makes it start fastest.
//  - macOS: libSystem only (nothing else can be static there), libc++
//    linked in; the same deployment targets as the addon (targets.mjs).
//  - Windows: Zig's MinGW-w64 target, libc++ linked in; it imports only
//    system DLLs (check-binaries.mjs).
// Built at -Os: the program is a few system calls around the core, and the
// file is shipped in every install (target: at most 1 MB per platform).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT } from '../build/sources.mjs';
import { libSystemStubDir, zigEnv } from './build.mjs';
import { zigBinary } from './deps.mjs';
import { packageVersion, recordTarget } from './manifest.mjs';
import { CLI_TARGETS, cliFile } from './targets.mjs';

const CORE = ['status', 'pkt_line', 'client_common', 'connect_policy', 'exchange'].map((f) => `native/core/${f}.cc`);
const POSIX = ['unix_address', 'socket_util', 'socket_exchange', 'client_posix'].map((f) => `native/posix/${f}.cc`);
const WIN = ['win_util', 'pipe_name', 'security_win', 'client_win'].map((f) => `native/win/${f}.cc`);
const CLI = ['native/cli/send_main.cc'];

/** The sources of the program for an OS ('linux', 'mac', 'win'). */
export function cliSources(os) {
  return os === 'win'
    ? [...CORE, ...WIN, ...CLI, 'native/cli/cli_io_win.cc']
    : [...CORE, ...POSIX, ...CLI, 'native/cli/cli_io_posix.cc'];
}


function commonFlags(os) {
  return [
    '-std=c++17', '-Os', '-Wall', '-Wextra', '-Wpedantic', '-DNDEBUG', `-DSIPC_VERSION="${packageVersion()}"`,
    // No checkout path in the binary: the same sources give the same bytes.
    `-ffile-prefix-map=${ROOT}=.`,
    ...(os === 'win' ? ['-DUNICODE', '-D_UNICODE', '-D_WIN32_WINNT=0x0A00'] : []),
  ];
}

function zigFlags(name) {
  const t = CLI_TARGETS[name];
  const flags = ['-target', t.zig, ...commonFlags(t.os), '-s'];
  if (t.os === 'linux') flags.push('-static');
  if (t.os === 'mac') {
    flags.push('-Werror=unguarded-availability');
    if (t.sdkFrom) flags.push('-L', path.relative(ROOT, libSystemStubDir(t.sdkFrom)), '-lSystem');
  }
  if (t.os === 'win') flags.push('-lshell32', '-ladvapi32');
  return flags;
}

function run(cmd, args, env) {
  const r = spawnSync(cmd, args, { cwd: ROOT, env, encoding: 'utf8' });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.error}):\n${out}`);
  if (/warning:/.test(out)) process.stdout.write(out);
  return out;
}

/** Builds one target with zig; returns the file. */
export function buildTarget(name, outDir = path.join(ROOT, 'prebuilds')) {
  const t = CLI_TARGETS[name];
  const file = path.join(outDir, name, cliFile(name));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const started = Date.now();
  // zigEnv wants an addon target name: the macOS SDK include path of an sdkFrom target.
  run(zigBinary(), ['c++', ...zigFlags(name), '-o', file, ...cliSources(t.os)], zigEnv(t.addonTarget));
  // Zig leaves a .pdb and an import library beside a Windows program;
  // neither is shipped.
  if (t.os === 'win') {
    for (const f of fs.readdirSync(path.dirname(file))) if (/\.(pdb|lib)$/.test(f)) fs.rmSync(path.join(path.dirname(file), f));
  }
  console.log(`[prebuild:cli] ${path.relative(ROOT, file)}: ${fs.statSync(file).size} bytes in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return file;
}

/** Builds for this machine with $CXX (or c++); returns the file. */
export function buildHost(outDir) {
  const os = process.platform === 'darwin' ? 'mac' : process.platform === 'win32' ? 'win' : 'linux';
  const file = path.join(outDir, os === 'win' ? 'simple-ipc-send.exe' : 'simple-ipc-send');
  fs.mkdirSync(outDir, { recursive: true });
  const cxx = process.env.CXX || 'c++';
  const libs = os === 'win' ? ['-lshell32', '-ladvapi32'] : [];
  run(cxx, [...commonFlags(os), '-o', file, ...cliSources(os), ...libs], process.env);
  return file;
}

function main() {
  const args = process.argv.slice(2);
  const outArg = args.find((a) => a.startsWith('--out='));
  const outDir = outArg ? path.resolve(outArg.slice(6)) : undefined;
  let targets = args.filter((a) => !a.startsWith('--'));
  const bad = targets.filter((t) => !CLI_TARGETS[t]);
  const unknown = args.filter((a) => a.startsWith('--') && a !== '--host' && !a.startsWith('--out='));
  if (bad.length || unknown.length || (args.includes('--host') && (!outDir || targets.length))) {
    console.error(`usage: cli.mjs [--out=DIR] [${Object.keys(CLI_TARGETS).join('|')}]... | cli.mjs --host --out=DIR`);
    process.exit(2);
  }
  if (args.includes('--host')) {
    console.log(`[prebuild:cli] ${buildHost(outDir)}`);
    return;
  }
  if (!targets.length) targets = Object.keys(CLI_TARGETS);
  for (const name of targets) {
    const file = buildTarget(name, outDir);
    if (!outDir) recordTarget(name, file, 'cli');
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  try {
    main();
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
}
