// Tests of the Git reference harness (bench/lib/git-ref.mjs):
//   node --test bench/test/
// The output checks and the ratios always run; the runs against Git's
// test-tool only when it is there (GIT_TEST_TOOL or the default output of
// bench/git/build-test-tool.sh) and dist/ is built.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { benchEnv } from '../lib/common.mjs';
import { GIT_PAIRINGS, OUR_CLI, findGitTestTool, gitCommands, gitFigures, runGitClient, startDaemon, stopDaemon } from '../lib/git-ref.mjs';

const byId = (quick) => Object.fromEntries(gitCommands(quick).map((c) => [c.id, c]));

test('multiple: line count, (good N) and (errors 0) are checked', () => {
  const { check } = byId(true)['multiple-1']; // 500 requests
  const lines = Array.from({ length: 500 }, (_, i) => `sent:A${String(4 + i).padStart(8, '0')} rcvd:A${String(4 + i).padStart(8, '0')}`);
  assert.equal(check([...lines, 'client (good 500) (join 0), (errors 0)', ''].join('\n')), null);
  assert.match(check([...lines.slice(1), 'client (good 499) (join 0), (errors 0)', ''].join('\n')), /lines/);
  assert.match(check([...lines, 'client (good 499) (join 0), (errors 1)', ''].join('\n')), /summary/);
});

test('sendbytes: the sent/rcvd line must match the byte count', () => {
  const { check } = byId(true).sendbytes; // 5,000,000 bytes
  assert.equal(check('sent:x05000000 rcvd:x05000000\n'), null);
  assert.match(check('sent:x05000000 rcvd:x04999999\n'), /unexpected/);
  assert.match(check(''), /unexpected/);
});

test('ratios are Git time / our time, per figure', () => {
  const times = {
    'multiple-8': { 'git/git': 2, 'git/ours': 1, 'ours/git': 4 },
    'multiple-1': { 'git/git': 1, 'ours/ours': 2 },
    sendbytes: { 'git/git': 0.3 },
  };
  const f = gitFigures(times);
  assert.deepEqual(f.map((x) => x.ratio), [2, 0.5, 0.5, null, null]);
});

test('benchEnv removes NODE_EXTRA_CA_CERTS and says so', () => {
  const set = benchEnv({ NODE_EXTRA_CA_CERTS: '/x.pem', KEEP: '1' });
  assert.deepEqual(set.env, { KEEP: '1' });
  assert.match(set.note, /was set.*removed/);
  assert.match(benchEnv({ KEEP: '1' }).note, /was not set/);
});

test('findGitTestTool: a GIT_TEST_TOOL that does not exist is reported', () => {
  const r = findGitTestTool({ GIT_TEST_TOOL: '/nonexistent/test-tool' });
  assert.equal(r.tool, null);
  assert.match(r.reason, /does not exist/);
});

const git = findGitTestTool();
const usesGit = (p) => p.client === 'git' || p.server === 'git';
const skipFor = (p) => (usesGit(p) && !git.tool ? git.reason : !fs.existsSync(OUR_CLI) ? `${OUR_CLI} not built` : false);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sipc-gitref-'));
const children = new Set();
const track = (c) => (children.add(c), c.on('exit', () => children.delete(c)), c);
after(() => {
  for (const c of children) c.kill('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
});

for (const p of GIT_PAIRINGS) {
  test(`t0052 commands, ${p.client} client against ${p.server} daemon`, { skip: skipFor(p) }, async () => {
    const { env } = benchEnv();
    const sockPath = path.join(dir, `${p.client}-${p.server}.sock`);
    const daemon = await startDaemon(p.server, { tool: git.tool, sockPath, env, track });
    try {
      for (const cmd of gitCommands(true)) {
        const small = { ...cmd, args: cmd.args.map((a) => a.replace(/^--batchsize=\d+$/, '--batchsize=20')) };
        if (cmd.id.startsWith('multiple')) small.check = (out) => (out.includes(`(good ${cmd.id === 'multiple-8' ? 160 : 20})`) ? null : out.slice(-100));
        const r = await runGitClient(p.client, { tool: git.tool, sockPath, env, track, cmd: small, limitMs: 60000 });
        assert.equal(r.error, null, `${cmd.id}: ${r.error}`);
        assert.ok(r.seconds > 0);
      }
    } finally {
      await stopDaemon(daemon);
    }
  });
}
