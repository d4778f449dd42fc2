// Every option of createServer and of the clients either has an effect on
// Windows or is refused with a clear error (test/win/option-support.mjs
// lists which, and the test that shows each effect); and the tests of the
// effects that only this file shows on Windows.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';

import { exited, hang, ipcPath, latch, rejection, repoRoot, serve, sipc, spawnNode, testAppHandler, waitFor, waitForLine } from './helpers.mjs';
import { CLIENT_OPTIONS, SERVER_OPTIONS } from './option-support.mjs';
import { describe, it } from './runner.mjs';

const { createServer, getActiveState, sendCommand } = sipc;
const require = createRequire(import.meta.url);
const { CLIENT_OPTION_NAMES, SERVER_OPTION_NAMES } = require(path.join(repoRoot, 'dist', 'options.js'));

describe('no option is silently ignored on Windows', () => {
  it('every option is listed, with the test of its effect or a refused value', () => {
    assert.deepEqual(Object.keys(SERVER_OPTIONS).sort(), Object.keys(SERVER_OPTION_NAMES).sort());
    assert.deepEqual(Object.keys(CLIENT_OPTIONS).sort(), Object.keys(CLIENT_OPTION_NAMES).sort());
    for (const [name, support] of Object.entries({ ...SERVER_OPTIONS, ...CLIENT_OPTIONS })) {
      const { effect } = support.win32;
      if (!effect) continue;
      const text = fs.readFileSync(path.join(repoRoot, effect.file), 'utf8');
      assert.ok(text.includes(effect.title), `${name}: no test "${effect.title}" in ${effect.file}`);
    }
  });

  for (const [name, support] of Object.entries(SERVER_OPTIONS)) {
    if (!('refused' in support.win32)) continue;
    it(`createServer refuses ${name} (ERR_INVALID_ARG_VALUE), and nothing listens`, async (t) => {
      const p = ipcPath(t);
      const error = await rejection(Promise.resolve().then(() => createServer(p, () => 'x', { [name]: support.win32.refused })));
      assert.equal(error.code, 'ERR_INVALID_ARG_VALUE');
      assert.match(error.message, new RegExp(`"options\\.${name}".*on Windows`));
      assert.equal(await getActiveState(p), 'path-not-found');
    });
  }
  for (const [name, support] of Object.entries(CLIENT_OPTIONS)) {
    if (!('refused' in support.win32)) continue;
    it(`the clients refuse ${name} (ERR_INVALID_ARG_VALUE)`, async (t) => {
      const error = await rejection(Promise.resolve().then(() => sendCommand(ipcPath(t), 'x', { [name]: support.win32.refused })));
      assert.equal(error.code, 'ERR_INVALID_ARG_VALUE');
    });
  }
});

describe('option effects shown here', () => {
  it('closeTimeoutMs: close() drops a handler that never answers once it has passed', async (t) => {
    const p = ipcPath(t);
    const inHandler = latch();
    const server = await serve(t, p, () => {
      inHandler.fire();
      return hang();
    }, { closeTimeoutMs: 400 });
    const answer = rejection(sendCommand(p, 'x'));
    await inHandler.fired;
    const started = Date.now();
    await server.close();
    const took = Date.now() - started;
    // Not before the grace (the point), and not at the default 30 s.
    assert.ok(took >= 400 - 20 && took < 10000, `close() took ${took} ms`);
    assert.equal((await answer).code, 'ERR_IPC_INCOMPLETE_RESPONSE');
  });

  it("closeOnSignals: SIGINT (Ctrl+C) closes the server gracefully, then the process ends; 'SIGTERM' is refused", async (t) => {
    const p = ipcPath(t);
    // Windows delivers Ctrl+C to Node as a 'SIGINT' event of `process`;
    // the child emits that event itself when told to (a test cannot press
    // Ctrl+C in another process's console).
    const script = `const { createServer } = require(${JSON.stringify(path.join(repoRoot, 'dist', 'index.js'))});
      createServer(${JSON.stringify(p)}, () => 'x', { closeOnSignals: true }).then((server) => {
        server.closed.then((reason) => console.log('closed ' + reason));
        process.stdin.once('data', () => process.emit('SIGINT'));
        console.log('up');
      });`;
    const child = spawnNode(t, ['-e', script], { stdio: ['pipe', 'pipe', 'pipe'] });
    await waitForLine(child, /^up/);
    assert.equal((await sendCommand(p, 'ping')).toString(), 'x');
    child.stdin.write('\n');
    await exited(child);
    assert.match(child.output(), /closed closed/);
    assert.equal(await getActiveState(p), 'path-not-found');
    const error = await rejection(Promise.resolve().then(() => createServer(ipcPath(t), () => 'x', { closeOnSignals: ['SIGINT', 'SIGTERM'] })));
    assert.equal(error.code, 'ERR_INVALID_ARG_VALUE');
    assert.match(error.message, /SIGTERM.*on Windows/);
  });

  it('replace: the running server is asked to quit, then ours takes the name', async (t) => {
    const p = ipcPath(t);
    const old = await serve(t, p, testAppHandler);
    const replacement = await createServer(p, () => 'new', { replace: true });
    t.onTestFinished(() => replacement.close({ force: true }));
    assert.equal(await old.closed, 'quit');
    assert.equal((await sendCommand(p, 'x')).toString(), 'new');
  });

  it('version: a server that announces another version is asked to quit, then ours takes the name', async (t) => {
    const p = ipcPath(t);
    const old = await serve(t, p, testAppHandler, { version: '1' });
    const current = await createServer(p, () => 'v2', { version: '2' });
    t.onTestFinished(() => current.close({ force: true }));
    assert.equal(await old.closed, 'quit');
    assert.equal((await sendCommand(p, 'x')).toString(), 'v2');
  });

  it('autoStart: sendCommand starts the daemon when no pipe has the name, then sends', async (t) => {
    const p = ipcPath(t);
    // The daemon stops by itself once idle, should the test fail first.
    const script = `require(${JSON.stringify(path.join(repoRoot, 'dist', 'index.js'))})` +
      `.createServer(${JSON.stringify(p)}, require(${JSON.stringify(path.join(repoRoot, 'dist', 'test-app.js'))}).testAppHandler, { idleTimeoutMs: 5000 })`;
    const autoStart = { command: process.execPath, args: ['-e', script], maxWaitMs: 30000 };
    assert.equal(await getActiveState(p), 'path-not-found');
    assert.equal((await sendCommand(p, 'ping', { autoStart })).toString(), 'pong');
    assert.equal((await sendCommand(p, 'ping', { autoStart })).toString(), 'pong');
    await sendCommand(p, 'quit');
    await waitFor(async () => (await getActiveState(p)) === 'path-not-found', 10000, 'the daemon to stop');
  });
});
