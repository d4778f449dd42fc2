// npm test's summary (scripts/test-all.mjs): how each step's output and
// exit code become its verdict and counts.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { repoRoot } from './helpers';

interface Verdict {
  passed: number;
  failed: number;
  skipped: number;
  flaky: number;
  ok: boolean;
  notes: string[];
}

// In a child: the script is plain JavaScript (no types to import here).
function judge(code: number, output: string): Verdict {
  const script = `import(${JSON.stringify(path.join(repoRoot, 'scripts', 'test-all.mjs'))}).then((m) =>
    console.log(JSON.stringify(m.judgeStep(Number(process.argv[1]), process.argv[2]))))`;
  const r = spawnSync(process.execPath, ['-e', script, String(code), output], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Verdict;
}

describe("a step's verdict", () => {
  it('comes from its last STEP-RESULT line, not the first', () => {
    const out = 'STEP-RESULT: 5 passed, 0 failed\nrerun:\nSTEP-RESULT: 4 passed, 1 failed\n';
    expect(judge(1, out)).toMatchObject({ passed: 4, failed: 1, ok: false });
    expect(judge(0, 'STEP-RESULT: 0 passed, 1 failed\nSTEP-RESULT: 7 passed, 0 failed, 2 skipped\n')).toMatchObject({
      passed: 7,
      failed: 0,
      skipped: 2,
      ok: true,
    });
  });

  it('fails a step that ran nothing, even with exit 0', () => {
    expect(judge(0, 'STEP-RESULT: 0 passed, 0 failed\n')).toMatchObject({ failed: 1, ok: false, notes: ['ran nothing'] });
    expect(judge(0, 'STEP-RESULT: 0 passed, 0 failed, 8 skipped\n')).toMatchObject({ failed: 1, skipped: 8, ok: false });
  });

  it('counts flaky and skipped tests apart, and a flaky pass still passes', () => {
    expect(judge(0, 'STEP-RESULT: 24 passed, 0 failed, 1 flaky\n')).toMatchObject({ passed: 24, flaky: 1, ok: true });
    expect(judge(0, 'STEP-RESULT: 86 passed, 0 failed, 8 skipped, 2 flaky\n')).toMatchObject({ skipped: 8, flaky: 2, ok: true });
  });

  it('fails a step that exits non-zero whatever it reports; counts one test without a STEP-RESULT', () => {
    expect(judge(1, 'STEP-RESULT: 3 passed, 0 failed\n')).toMatchObject({ passed: 3, failed: 1, ok: false });
    expect(judge(0, 'no counts\n')).toMatchObject({ passed: 1, failed: 0, ok: true });
    expect(judge(2, 'no counts\n')).toMatchObject({ passed: 0, failed: 1, ok: false });
  });

  it('fails a step that exits 0 but reports a failure', () => {
    expect(judge(0, 'STEP-RESULT: 3 passed, 1 failed\n')).toMatchObject({ failed: 1, ok: false });
  });

  it('reads only whole lines: a quoted STEP-RESULT inside another line does not count', () => {
    expect(judge(0, 'echo "STEP-RESULT: 9 passed, 0 failed"\nSTEP-RESULT: 2 passed, 0 failed\n')).toMatchObject({ passed: 2 });
    expect(judge(0, 'say "STEP-RESULT: 0 passed, 0 failed" in a log\nSTEP-RESULT: 2 passed, 0 failed\n')).toMatchObject({ passed: 2, ok: true });
  });
});
