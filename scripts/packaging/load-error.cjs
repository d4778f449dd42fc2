// Requires simple-ipc from a package that has no addon for this platform
// and checks the error: a stable code, the platform, every directory
// searched (each one absolute and really without an addon), and how to
// build from source. Usage: node load-error.cjs <package dir>
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const pkgDir = path.resolve(process.argv[2]);
let error;
try {
  require(pkgDir);
} catch (e) {
  error = e;
}
const problems = [];
if (!error) problems.push('require() succeeded without an addon');
else {
  const message = String(error.message);
  console.log(message.split('\n').map((l) => `  | ${l}`).join('\n'));
  if (error.code !== 'ERR_IPC_ADDON_NOT_FOUND') problems.push(`code is ${error.code}`);
  if (!message.includes(`${process.platform}-${process.arch}`)) problems.push('the platform is not named');
  const listed = message.split('\n').map((l) => l.trim()).filter((l) => path.isAbsolute(l));
  const expected = [
    path.join(pkgDir, 'build', 'Release'),
    path.join(pkgDir, 'build', 'Debug'),
    path.join(pkgDir, 'prebuilds', `${process.platform}-${process.arch}`),
  ];
  for (const dir of expected) if (!listed.includes(dir)) problems.push(`searched directory not listed: ${dir}`);
  for (const dir of listed) {
    const addons = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.node')) : [];
    if (addons.length) problems.push(`listed ${dir}, which has an addon`);
  }
  if (!/npm rebuild simple-ipc --build-from-source/.test(message)) problems.push('no build-from-source command');
  if (!/C\+\+17 compiler/.test(message) || !/Python 3/.test(message)) problems.push('does not say what a source build needs');
}
if (problems.length) {
  console.log(problems.map((p) => `  ${p}`).join('\n'));
  process.exit(1);
}
