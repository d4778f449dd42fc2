// The client on Windows (docs/protocol.md#windows-client): connect rules,
// cancellation and timeouts, connect() then send(), the synchronous
// client.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { fixtures, hang, ipcPath, rejection, repoRoot, serve, sipc, sleep, spawnNode, tempDir, waitForLine } from './helpers.mjs';
import { describe, it } from './runner.mjs';

const { connect, createServer, getActiveStateSync, sendCommand, sendCommandSync, streamCommand } = sipc;

describe('connect rules (docs/protocol.md#windows-client)', () => {
  it('ENOENT at once when no pipe has the name (state path-not-found)', async (t) => {
    const p = ipcPath(t);
    const started = Date.now();
    const error = await rejection(sendCommand(p, 'ping'));
    assert.equal(error.code, 'ENOENT');
    assert.equal(error.syscall, 'connect');
    assert.equal(error.state, 'path-not-found');
    assert.equal(error.address, p);
    assert.ok(Date.now() - started < 1000);
  });

  it('waitIfNotFound: retries every 50 ms until the server appears', async (t) => {
    const p = ipcPath(t);
    setTimeout(() => void serve(t, p), 300);
    assert.equal((await sendCommand(p, 'ping', { waitIfNotFound: true })).toString(), 'pong');
  });

  it('waitIfNotFound: gives up after connectTimeoutMs with path-not-found (as Git on Windows)', async (t) => {
    const p = ipcPath(t);
    const started = Date.now();
    const error = await rejection(sendCommand(p, 'ping', { waitIfNotFound: true, connectTimeoutMs: 300 }));
    assert.equal(error.code, 'ENOENT');
    assert.equal(error.state, 'path-not-found');
    const took = Date.now() - started;
    assert.ok(took >= 200 && took < 2500, `took ${took} ms`);
  });

  it('a path whose directory does not exist: invalid-path', async (t) => {
    const p = path.join(tempDir(t), 'missing', 'x.ipc');
    const error = await rejection(sendCommand(p, 'ping'));
    assert.equal(error.code, 'ENOENT');
    assert.equal(error.state, 'invalid-path');
  });

  it('throws argument errors synchronously', () => {
    assert.throws(() => sendCommand('', 'x'), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => sendCommand('C:\\x', 42), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => sendCommand('C:\\x', 'x', { timeoutMs: -1 }), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => createServer('C:\\x', () => 'x', { pipeAccess: 'nobody' }), { code: 'ERR_INVALID_ARG_VALUE' });
  });
});

describe('connecting off the completion-port thread', () => {
  // Making a pipe name walks the path through the file system, one call
  // per component: a path of thousands of components (each `a\..\`) is
  // a connect that takes long before any pipe is asked. Connects run on
  // two threads of their own, so an exchange started after it on a
  // working server completes first; on the port thread it would wait.
  it('a slow connect does not hold an exchange with a working server', async (t) => {
    const p = ipcPath(t);
    await serve(t, p);
    const dir = tempDir(t);
    fs.mkdirSync(path.join(dir, 'a'));
    const slowPath = dir + '\\' + 'a\\..\\'.repeat(6400) + 'x.ipc'; // not path.join: it would fold the ..
    assert.ok(slowPath.length < 32700);
    const events = [];
    const slow = rejection(sendCommand(slowPath, 'ping')).then((error) => events.push(`slow ${error.code}`));
    const working = sendCommand(p, 'ping').then((reply) => events.push(`working ${reply}`));
    await Promise.all([working, slow]);
    assert.deepEqual(events, ['working pong', 'slow ENOENT']);
  });
});

describe('serverUid and maxResponseBytes', () => {
  // Wine runs every process as one user: a server of another user cannot
  // be made here; the check itself runs (GetNamedPipeServerProcessId and
  // the server process's token) and must find the same user.
  it("serverUid: 'self' is served by our own server, in both clients; a uid is refused", async (t) => {
    const p = ipcPath(t);
    await serve(t, p);
    assert.equal((await sendCommand(p, 'ping', { serverUid: 'self' })).toString(), 'pong');
    const child = spawnNode(t, ['-e', `
      const { sendCommandSync } = require(${JSON.stringify(path.join(repoRoot, 'dist', 'index.js'))});
      console.log('sync ' + sendCommandSync(${JSON.stringify(p)}, 'ping', { serverUid: 'self' }).toString());`]);
    await waitForLine(child, /^sync pong/);
    assert.throws(() => sendCommand(p, 'ping', { serverUid: 0 }), { code: 'ERR_INVALID_ARG_VALUE' });
  });

  it('maxResponseBytes: exactly the limit is taken, one byte more is ERR_IPC_RESPONSE_TOO_LARGE', async (t) => {
    const p = ipcPath(t);
    await serve(t, p, () => 'x'.repeat(1000));
    assert.equal((await sendCommand(p, 'q', { maxResponseBytes: 1000 })).length, 1000);
    const error = await rejection(sendCommand(p, 'q', { maxResponseBytes: 999 }));
    assert.equal(error.code, 'ERR_IPC_RESPONSE_TOO_LARGE');
    assert.equal(error.address, p);
  });
});

describe('cancellation and timeouts', () => {
  it('timeoutMs ends an exchange the server never answers with ERR_IPC_TIMEOUT', async (t) => {
    const p = ipcPath(t);
    await serve(t, p, hang);
    const started = Date.now();
    const error = await rejection(sendCommand(p, 'x', { timeoutMs: 200 }));
    assert.equal(error.code, 'ERR_IPC_TIMEOUT');
    assert.ok(Date.now() - started < 2000);
  });

  it('an AbortSignal cancels a pending exchange with an AbortError', async (t) => {
    const p = ipcPath(t);
    await serve(t, p, hang);
    const controller = new AbortController();
    const pending = sendCommand(p, 'x', { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('enough')), 50);
    const error = await rejection(pending);
    assert.equal(error.name, 'AbortError');
    assert.equal(error.code, 'ABORT_ERR');
  });

  it('an aborted signal rejects at once', async (t) => {
    const error = await rejection(sendCommand(ipcPath(t), 'x', { signal: AbortSignal.abort() }));
    assert.equal(error.name, 'AbortError');
  });

  it('aborting a stream mid-response ends the iteration with an AbortError', async (t) => {
    const p = ipcPath(t);
    await serve(t, p, async (_r, reply) => {
      await reply.write('one');
      await hang();
    });
    const controller = new AbortController();
    const seen = [];
    const error = await rejection(
      (async () => {
        for await (const chunk of streamCommand(p, 'x', { signal: controller.signal })) {
          seen.push(chunk.toString());
          controller.abort();
        }
      })(),
    );
    assert.equal(error.name, 'AbortError');
    assert.deepEqual(seen, ['one']);
  });

  it('timeoutMs also applies to the sync client', async (t) => {
    const p = ipcPath(t);
    const child = spawnNode(t, [path.join(fixtures, 'hang-server.js'), p]);
    await waitForLine(child, /listening/);
    const started = Date.now();
    assert.throws(() => sendCommandSync(p, 'x', { timeoutMs: 200 }), { code: 'ERR_IPC_TIMEOUT' });
    assert.ok(Date.now() - started < 2000);
  });

  it('100 exchanges in flight leave fs work (libuv pool) unhindered', async (t) => {
    const p = ipcPath(t);
    await serve(t, p, hang, { threads: 2 });
    const controller = new AbortController();
    const inFlight = Array.from({ length: 100 }, () => sendCommand(p, 'x', { signal: controller.signal }).catch((e) => e));
    await sleep(200);
    const started = Date.now();
    await Promise.all(Array.from({ length: 20 }, () => fs.promises.readFile(path.join(repoRoot, 'package.json'))));
    assert.ok(Date.now() - started < 5000);
    controller.abort();
    const results = await Promise.all(inFlight);
    assert.ok(results.every((r) => r.code === 'ABORT_ERR'));
  });
});

describe('connect() then send()', () => {
  it('connects first and sends one request later', async (t) => {
    const p = ipcPath(t);
    await serve(t, p);
    const connection = await connect(p);
    await sleep(50);
    assert.equal((await connection.send('ping')).toString(), 'pong');
    assert.equal((await rejection(connection.send('ping'))).code, 'ERR_IPC_CONNECTION_USED');
  });

  it('rejects like sendCommand when nothing listens', async (t) => {
    const error = await rejection(connect(ipcPath(t)));
    assert.equal(error.code, 'ENOENT');
    assert.equal(error.state, 'path-not-found');
  });

  it('close() without sending is a silent probe for the server', async (t) => {
    const p = ipcPath(t);
    const server = await serve(t, p);
    const errors = [];
    server.on('clientError', (e) => errors.push(e));
    const connection = await connect(p);
    connection.close();
    await sleep(100);
    assert.deepEqual(errors, []);
    assert.equal((await sendCommand(p, 'ping')).toString(), 'pong');
  });
});

describe('the synchronous client', () => {
  it('talks to a server in another process', async (t) => {
    const p = ipcPath(t);
    const child = spawnNode(t, [path.join(fixtures, 'app-server.js'), p]);
    await waitForLine(child, /listening/);
    assert.equal(sendCommandSync(p, 'ping').toString(), 'pong');
    assert.equal(sendCommandSync(p, 'big').length, 10000 * 81);
    const ballast = Buffer.concat([Buffer.from('sendbytes '), Buffer.alloc(300000, 'z')]);
    assert.equal(sendCommandSync(p, ballast).toString(), 'rcvd:z00300000\n');
    assert.equal(sendCommandSync(p, '').toString(), 'unhandled command: ');
    assert.equal(getActiveStateSync(p), 'listening');
  });

  it('throws connect errors like the async client', (t) => {
    assert.throws(() => sendCommandSync(ipcPath(t), 'ping'), { code: 'ENOENT', state: 'path-not-found' });
  });
});
