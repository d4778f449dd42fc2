// The server's limits on Windows: maxRequestBytes, requestTimeoutMs,
// maxConnections, allowPeer, and reply.write() backpressure.
import assert from 'node:assert/strict';

import { gitPipeName, ipcPath, rawConnect, rejection, serve, sipc, sleep, testAppHandlerOr, waitFor } from './helpers.mjs';
import { describe, it } from './runner.mjs';

const { sendCommand } = sipc;

describe('limits', () => {
  it('maxRequestBytes: the limit is served, one byte more is dropped and reported', async (t) => {
    const p = ipcPath(t);
    const server = await serve(t, p, (r) => `got ${r.length}`, { maxRequestBytes: 100000 });
    const errors = [];
    server.on('clientError', (e) => errors.push(e.code));
    assert.equal((await sendCommand(p, Buffer.alloc(100000))).toString(), 'got 100000');
    const error = await rejection(sendCommand(p, Buffer.alloc(100001)));
    assert.ok(['ERR_IPC_INCOMPLETE_RESPONSE', 'EPIPE'].includes(error.code), error.code);
    await waitFor(() => errors.length === 1, 3000, 'the client error');
    assert.deepEqual(errors, ['ERR_IPC_REQUEST_TOO_LARGE']);
  });

  it('requestTimeoutMs: a client that sends nothing is dropped and reported', async (t) => {
    const p = ipcPath(t);
    const server = await serve(t, p, testAppHandlerOr('ping'), { requestTimeoutMs: 300 });
    const errors = [];
    server.on('clientError', (e) => errors.push(e.code));
    // Timed from before the connect, so that a slow JS thread here cannot
    // make the drop look early; the upper bound only catches "never".
    const started = Date.now();
    const socket = await rawConnect(t, gitPipeName(p));
    socket.write('00');
    await new Promise((resolve) => (socket.closed ? resolve() : socket.once('close', resolve)));
    const took = Date.now() - started;
    assert.ok(took >= 250 && took < 20000, `dropped after ${took} ms`);
    await waitFor(() => errors.length === 1, 2000, 'the client error');
    assert.deepEqual(errors, ['ERR_IPC_REQUEST_TIMEOUT']);
  });

  it('maxConnections: a connection over the limit is closed at once and reported', async (t) => {
    const p = ipcPath(t);
    const server = await serve(t, p, testAppHandlerOr('ping'), { maxConnections: 2 });
    const errors = [];
    server.on('clientError', (e) => errors.push(e.code));
    await rawConnect(t, gitPipeName(p));
    await rawConnect(t, gitPipeName(p));
    await sleep(300); // the server has counted them
    const error = await rejection(sendCommand(p, 'ping'));
    assert.ok(['ERR_IPC_INCOMPLETE_RESPONSE', 'EPIPE'].includes(error.code), error.code);
    await waitFor(() => errors.length >= 1, 2000, 'the client error');
    assert.equal(errors[0], 'ERR_IPC_TOO_MANY_CONNECTIONS');
  });

  it('allowPeer: a refused peer never reaches the handler; an accepted one does', async (t) => {
    const p = ipcPath(t);
    let allow = false;
    let handled = 0;
    const seen = [];
    await serve(
      t,
      p,
      () => {
        handled++;
        return 'in';
      },
      {
        allowPeer: async (peer) => {
          seen.push(peer);
          await sleep(10);
          return allow;
        },
      },
    );
    assert.ok((await rejection(sendCommand(p, 'x'))).code);
    assert.equal(handled, 0);
    allow = true;
    assert.equal((await sendCommand(p, 'x')).toString(), 'in');
    assert.equal(handled, 1);
    assert.equal(seen[0].pid, process.pid);
    assert.match(seen[0].sid, /^S-1-5-/);
  });

  it('requestTimeoutMs pauses while allowPeer decides and starts anew once it allows', async (t) => {
    const p = ipcPath(t);
    const errors = [];
    const server = await serve(t, p, testAppHandlerOr('ping'), {
      requestTimeoutMs: 300,
      // Three times the request's limit: a deadline still running from the
      // connect would drop the client before the answer.
      allowPeer: async () => {
        await sleep(900);
        return true;
      },
    });
    server.on('clientError', (e) => errors.push(e.code));
    assert.equal((await sendCommand(p, 'ping')).toString(), 'pong');
    assert.deepEqual(errors, []);
  });

  it('reply.write() resolves once the bytes are written (backpressure), in order', async (t) => {
    const p = ipcPath(t);
    const written = [];
    await serve(t, p, async (_r, reply) => {
      for (let i = 0; i < 20; i++) {
        await reply.write(Buffer.alloc(50000, 97 + i));
        written.push(i);
      }
    });
    const response = await sendCommand(p, 'x');
    assert.equal(response.length, 20 * 50000);
    for (let i = 0; i < 20; i++) assert.equal(response[i * 50000], 97 + i);
    assert.equal(written.length, 20);
  });
});
