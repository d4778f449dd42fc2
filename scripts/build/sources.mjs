#!/usr/bin/env node
// binding.gyp is the one list of the addon's source files and defines;
// every other build description reads it here or is checked against it:
//
//   node scripts/build/sources.mjs sources <os>   one source file a line
//   node scripts/build/sources.mjs defines <os>   one define a line (as
//       binding.gyp has them; compileDefines() adds NAPI_CPP_EXCEPTIONS)
//   node scripts/build/sources.mjs check          CMakeLists.txt and
//       scripts/win/Makefile list the same files as binding.gyp (exit 1
//       with the differences otherwise)
//
// <os> is gyp's OS name: linux, mac or win. binding.gyp is read as JSON
// (it is kept valid JSON: no comments, no trailing commas), never
// evaluated. Only the condition forms binding.gyp uses are understood
// (OS=='x' and OS!='x'); any other fails loudly rather than being skipped.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const OSES = ['linux', 'mac', 'win'];

export function readGypTarget(root = ROOT) {
  const gyp = JSON.parse(fs.readFileSync(path.join(root, 'binding.gyp'), 'utf8'));
  const targets = gyp.targets.filter((t) => t.target_name === 'simple_ipc');
  if (targets.length !== 1) throw new Error('binding.gyp: expected exactly one target named simple_ipc');
  return targets[0];
}

// Whether a gyp condition string holds for the given OS.
function conditionHolds(condition, os) {
  const m = /^\s*OS\s*(==|!=)\s*'([a-z]+)'\s*$/.exec(condition);
  if (!m) throw new Error(`binding.gyp: condition not understood here: ${condition}`);
  return m[1] === '==' ? os === m[2] : os !== m[2];
}

// The values of one list key ("sources", "defines", "cflags_cc", ...) for
// one OS: the target's own list, then each matching condition's.
export function gypList(key, os, target = readGypTarget()) {
  if (!OSES.includes(os)) throw new Error(`unknown OS ${os} (one of ${OSES.join(', ')})`);
  const out = [...(target[key] || [])];
  for (const [condition, then, otherwise] of target.conditions || []) {
    const branch = conditionHolds(condition, os) ? then : otherwise;
    if (branch) out.push(...(branch[key] || []));
  }
  return out;
}

// Defines as the compiler sees them, including what gyp's
// node_addon_api_except dependency adds (C++ exceptions enabled).
export function compileDefines(os, target = readGypTarget()) {
  const defines = gypList('defines', os, target);
  if ((target.dependencies || []).some((d) => /:node_addon_api_except$/.test(d))) defines.push('NAPI_CPP_EXCEPTIONS');
  return defines;
}

// ---- the checks ------------------------------------------------------------

// CMakeLists.txt: the files named in each set(SIPC_<NAME>_SOURCES ...) and
// list(APPEND SIPC_<NAME>_SOURCES ...), as repository paths.
function cmakeLists(root) {
  const text = fs.readFileSync(path.join(root, 'CMakeLists.txt'), 'utf8');
  const lists = {};
  const re = /(?:set|list\s*\(\s*APPEND)\s*\(?\s*(SIPC_[A-Z]+_SOURCES)\b([^)]*)\)/g;
  for (const m of text.matchAll(re)) {
    const files = [...m[2].matchAll(/\$\{SIPC_DIR\}\/([A-Za-z0-9_/]+\.cc)/g)].map((f) => `native/${f[1]}`);
    (lists[m[1]] ||= []).push(...files);
  }
  return lists;
}

function sameSet(a, b) {
  const sa = new Set(a);
  const sb = new Set(b);
  return {
    missing: [...sa].filter((x) => !sb.has(x)).sort(),
    extra: [...sb].filter((x) => !sa.has(x)).sort(),
  };
}

export function check(root = ROOT) {
  const target = readGypTarget(root);
  const problems = [];
  const compare = (what, want, have) => {
    const { missing, extra } = sameSet(want, have);
    for (const f of missing) problems.push(`${what} lacks ${f} (binding.gyp has it)`);
    for (const f of extra) problems.push(`${what} has ${f} (binding.gyp does not)`);
  };
  for (const os of OSES) {
    for (const f of gypList('sources', os, target)) {
      if (!fs.existsSync(path.join(root, f))) problems.push(`binding.gyp (${os}) names ${f}, which does not exist`);
    }
  }
  // CMake groups the same files by folder; the poller is chosen by an
  // option there, so the two pollers are compared with binding.gyp's
  // linux and mac lists separately.
  const cm = cmakeLists(root);
  const all = (...names) => names.flatMap((n) => cm[n] || []);
  const pollers = /\/poller_[a-z]+\.cc$/;
  const cmakeCommon = all('SIPC_CORE_SOURCES', 'SIPC_ADDON_SOURCES');
  const cmakePosix = all('SIPC_POSIX_SOURCES');
  compare('CMakeLists.txt (linux: core + addon + posix, epoll poller)', gypList('sources', 'linux', target),
    [...cmakeCommon, ...cmakePosix.filter((f) => !pollers.test(f) || f.endsWith('poller_epoll.cc'))]);
  compare('CMakeLists.txt (mac: core + addon + posix, poll() poller)', gypList('sources', 'mac', target),
    [...cmakeCommon, ...cmakePosix.filter((f) => !pollers.test(f) || f.endsWith('poller_poll.cc'))]);
  compare('CMakeLists.txt (win: core + addon + win)', gypList('sources', 'win', target),
    [...cmakeCommon, ...all('SIPC_WIN_SOURCES')]);
  // The Windows Makefile takes its list from build.sh, which takes it from
  // here: it must not carry a list of its own that could drift.
  // (An installed package has no scripts/: its CMakeLists.txt is checked alone.)
  const makefilePath = path.join(root, 'scripts', 'win', 'Makefile');
  const makefile = fs.existsSync(makefilePath) ? fs.readFileSync(makefilePath, 'utf8') : '';
  if (/native\/(core|addon|win|posix)\/[a-z_]+\.cc/.test(makefile.replace(/native\/win\/mingw_delay_load_hook\.cc/g, ''))) {
    problems.push('scripts/win/Makefile names addon sources itself: it must take SOURCES from build.sh');
  }
  return problems;
}

// ---- command line ----------------------------------------------------------

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [what, os] = process.argv.slice(2);
  if (what === 'sources' || what === 'defines') {
    const list = gypList(what, os);
    process.stdout.write(list.join('\n') + '\n');
  } else if (what === 'check') {
    const problems = check();
    if (problems.length) {
      for (const p of problems) console.log(p);
      process.exit(1);
    }
    const counts = OSES.map((o) => `${o} ${gypList('sources', o).length}`).join(', ');
    console.log(`binding.gyp sources (${counts}): CMakeLists.txt lists the same; scripts/win/Makefile takes them from build.sh`);
  } else {
    console.error('usage: sources.mjs sources|defines <linux|mac|win> | check');
    process.exit(2);
  }
}
