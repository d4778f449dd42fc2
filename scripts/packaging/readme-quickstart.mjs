#!/usr/bin/env node
// The README's quick start, run as written from a project that installed
// the packed tarball: every code block preceded by `<!-- file: NAME -->`
// is written to NAME in that project, and every line of a shell block
// preceded by `<!-- run -->` is run there in order, with bash. A command
// whose comment reads `# prints X` must print exactly X (its stdout,
// trimmed); every command must exit 0.
//
// Usage: node readme-quickstart.mjs <README.md> <project dir>
// Prints each command with its output; exits 1 at the first that fails.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const [readme, project] = process.argv.slice(2);
const lines = fs.readFileSync(readme, 'utf8').split('\n');

/** The fenced block starting at or after line `i` (skipping blank lines): its body and the line after it. */
function blockAt(i) {
  while (i < lines.length && lines[i].trim() === '') i++;
  const open = /^(`{3,})/.exec(lines[i] ?? '');
  if (!open) throw new Error(`README line ${i + 1}: a marker must be followed by a fenced code block`);
  const body = [];
  for (i++; i < lines.length && !lines[i].startsWith(open[1]); i++) body.push(lines[i]);
  return { body, next: i + 1 };
}

const files = [];
const commands = [];
for (let i = 0; i < lines.length; i++) {
  const file = /^<!-- file: (\S+) -->$/.exec(lines[i]);
  if (file) {
    const { body } = blockAt(i + 1);
    files.push([file[1], body.join('\n') + '\n']);
  } else if (lines[i] === '<!-- run -->') {
    const { body } = blockAt(i + 1);
    for (const line of body) if (line.trim() !== '' && !line.trim().startsWith('#')) commands.push(line);
  }
}
if (files.length === 0 || commands.length === 0) {
  console.log(`the README marks ${files.length} file(s) and ${commands.length} command(s): nothing to run`);
  process.exit(1);
}

for (const [name, text] of files) {
  fs.writeFileSync(path.join(project, name), text);
  console.log(`wrote ${name} (${text.split('\n').length - 1} lines)`);
}
for (const command of commands) {
  const expected = /#\s*prints (.+?)(?:\s+\(.*\))?\s*$/.exec(command)?.[1];
  const r = spawnSync('bash', ['-c', command], { cwd: project, encoding: 'utf8', timeout: 120000 });
  console.log(`$ ${command}`);
  if (r.stdout) console.log(r.stdout.replace(/\n$/, '').replace(/^/gm, '  '));
  if (r.stderr) console.log(r.stderr.replace(/\n$/, '').replace(/^/gm, '  stderr: '));
  if (r.status !== 0) {
    console.log(`FAILED: exit ${r.status ?? r.signal}`);
    process.exit(1);
  }
  const printed = r.stdout.trim().split('\n').join(', ');
  if (expected !== undefined && printed !== expected) {
    console.log(`FAILED: printed ${JSON.stringify(printed)}, the README says ${JSON.stringify(expected)}`);
    process.exit(1);
  }
}
console.log(`the README's ${files.length} file(s) and ${commands.length} command(s) ran as written`);
