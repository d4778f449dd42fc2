// examples/counter against another local user posing as its daemon
// (docs/security.md#where-to-put-the-socket): the client's default socket
// path is a per-user private place (defaultSocketPath), so an impostor
// listening where the daemon would be found in a shared temporary
// directory never gets the request.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';

import { repoRoot } from '../helpers';
import { cannotSwitchUser, OTHER_UID, ready, runAsOther, territory } from './other-user';

// The other user's side: listens at every given path with a fake counter
// that prints each request it gets and answers '42 (forged)'.
const IMPOSTOR = `
  const net = require('node:net'), fs = require('node:fs'), path = require('node:path');
  const paths = process.argv.slice(1);
  let listening = 0;
  for (const p of paths) {
    fs.mkdirSync(path.dirname(p), { recursive: true, mode: 0o700 });
    const server = net.createServer((s) => {
      let got = '';
      s.on('data', (d) => {
        got += d;
        if (!got.endsWith('0000')) return;
        console.log('request ' + JSON.stringify(got));
        s.end('000f42 (forged)0000');
      });
      s.on('error', () => {});
    });
    server.listen(p, () => { fs.chmodSync(p, 0o777); if (++listening === paths.length) console.log('ready'); });
  }
`;

function counterClient(tmp: string, args: string[], socket?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp };
  delete env.XDG_RUNTIME_DIR;
  delete env.COUNTER_SOCKET;
  if (socket !== undefined) env.COUNTER_SOCKET = socket;
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(repoRoot, 'examples', 'counter', 'client.js'), ...args], { env, cwd: repoRoot, timeout: 60000 }, (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe.skipIf(cannotSwitchUser !== null)('examples/counter against an impostor (finding 5)', () => {
  test("root's client never sends to another user's socket in the shared temporary directory", async () => {
    const { shared } = territory();
    const uid = process.geteuid!();
    // Where the client used to look, and where it looks now: the impostor
    // takes both names first (the per-user directory as a directory of its own).
    const impostor = runAsOther(IMPOSTOR, [path.join(shared, `counter-${uid}.ipc`), path.join(shared, `simple-ipc-${uid}`, 'counter.ipc')]);
    await ready(impostor);
    const result = await counterClient(shared, ['incr', 'builds']);
    console.log(`counter client as root: exit ${result.code}, stdout ${JSON.stringify(result.stdout)}, stderr ${JSON.stringify(result.stderr.trim())}`);
    expect(impostor.output()).not.toContain('request');
    expect(result.stdout).not.toContain('forged');
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/^counter: ERR_IPC_UNSAFE_DIRECTORY: /);
    expect(fs.lstatSync(path.join(shared, `simple-ipc-${uid}`)).uid).toBe(OTHER_UID); // left alone
  });

  test('a socket of another user at COUNTER_SOCKET gets no request: the client requires its own user (serverUid)', async () => {
    const { shared } = territory();
    const socket = path.join(shared, 'counter.ipc'); // a shared place the other user took first
    const impostor = runAsOther(IMPOSTOR, [socket]);
    await ready(impostor);
    const result = await counterClient(shared, ['incr', 'builds'], socket);
    console.log(`counter client as root: exit ${result.code}, stdout ${JSON.stringify(result.stdout)}, stderr ${JSON.stringify(result.stderr.trim())}`);
    expect(impostor.output()).not.toContain('request');
    expect(result.stdout).not.toContain('forged');
    expect(result.stderr).toMatch(/^counter: ERR_IPC_SERVER_IDENTITY: /);
  });
});
