// Runs beside the API tests when scripts/test-steps/60-packaging.sh runs
// them under another Node binary or against another addon build: proves
// that vitest's worker processes run on the Node binary that launched
// vitest, and that the library under test loaded the addon file the step
// means to test (SIPC_EXPECT_EXEC, SIPC_EXPECT_ADDON).
import * as fs from 'node:fs';
import { expect, it } from 'vitest';

import { MAX_PACKET_PAYLOAD } from '../../dist/index.js';

function mappedAddons(): string[] {
  const files = new Set<string>();
  for (const line of fs.readFileSync('/proc/self/maps', 'utf8').split('\n')) {
    const at = line.indexOf('/');
    if (at >= 0 && line.endsWith('.node') && /simple[-_]ipc/.test(line)) files.add(line.slice(at));
  }
  return [...files];
}

it('runs on the expected Node binary and loads the expected addon', () => {
  expect(MAX_PACKET_PAYLOAD).toBe(65516);
  const addons = mappedAddons();
  console.log(`probe: node ${process.version} (${process.execPath}), addon ${addons.join(', ')}`);
  if (process.env.SIPC_EXPECT_EXEC) {
    expect(fs.realpathSync(process.execPath)).toBe(fs.realpathSync(process.env.SIPC_EXPECT_EXEC));
  }
  if (process.env.SIPC_EXPECT_ADDON) {
    expect(addons).toEqual([fs.realpathSync(process.env.SIPC_EXPECT_ADDON)]);
  }
});
