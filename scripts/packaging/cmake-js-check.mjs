#!/usr/bin/env node
// After a cmake-js build in an installed package: it compiled exactly the
// files binding.gyp lists for Linux, each with every define binding.gyp
// gives them, and the package's CMakeLists.txt lists the same files as its
// binding.gyp for every OS (Windows cannot be built here).
// Usage: node cmake-js-check.mjs <package dir> (with build/compile_commands.json)
import * as fs from 'node:fs';
import * as path from 'node:path';
import { check, compileDefines, gypList, readGypTarget } from '../build/sources.mjs';

const pkg = path.resolve(process.argv[2]);
const target = readGypTarget(pkg);
const commands = JSON.parse(fs.readFileSync(path.join(pkg, 'build', 'compile_commands.json'), 'utf8')).filter((c) =>
  /simple_ipc/.test(c.output || c.command),
);
const problems = [];

const want = gypList('sources', 'linux', target).sort();
const compiled = [...new Set(commands.map((c) => path.relative(pkg, c.file)))].sort();
for (const f of want.filter((f) => !compiled.includes(f))) problems.push(`not compiled: ${f}`);
for (const f of compiled.filter((f) => !want.includes(f))) problems.push(`compiled but not in binding.gyp: ${f}`);

const defines = compileDefines('linux', target);
const missing = new Set();
for (const c of commands) for (const d of defines) if (!c.command.includes(` -D${d} `)) missing.add(d);
for (const d of missing) problems.push(`a compile command lacks -D${d}`);

problems.push(...check(pkg));

if (problems.length) {
  for (const p of problems) console.log(p);
  process.exit(1);
}
console.log(`cmake-js compiled the ${compiled.length} sources binding.gyp lists for Linux, each with its ${defines.length} defines (${defines.join(' ')})`);
console.log(`CMakeLists.txt lists binding.gyp's sources for linux, mac and win`);
