// The server's limits on Windows: maxRequestBytes, requestTimeoutMs,
// maxConnections, allowPeer, and reply.write() backpressure.
import assert from 'node:assert/strict';
import * as net from 'node:net';

import { frame, gitPipeName, ipcPath, latch, rawConnect, rejection, serve, sipc, sleep, testAppHandlerOr, unframe, waitFor } from './helpers.mjs';
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

  it('maxBufferedRequestBytes: the read that would pass the budget drops its connection (ERR_IPC_BUFFER_FULL); the others keep theirs', async (t) => {
    const p = ipcPath(t);
    const server = await serve(t, p, (r) => `got ${r.length}`, { maxBufferedRequestBytes: 100000, threads: 1 });
    const errors = [];
    server.on('clientError', (e) => errors.push(e.code));
    const collect = (socket) => {
      const chunks = [];
      socket.on('data', (d) => chunks.push(d));
      return new Promise((resolve) => socket.once('close', () => resolve(unframe(Buffer.concat(chunks)))));
    };
    // A holds 60000 request bytes, then B's 50000 would make 110000.
    const a = await rawConnect(t, gitPipeName(p));
    const aDone = collect(a);
    const aRequest = frame(Buffer.alloc(70000, 97));
    a.write(aRequest.subarray(0, 60004));
    await waitFor(() => server.stats().bytesIn >= 60004, 5000, "A's first 60000 bytes read");
    const b = await rawConnect(t, gitPipeName(p));
    const bDone = collect(b);
    b.write(frame(Buffer.alloc(60000, 98)).subarray(0, 50004));
    assert.equal((await bDone).complete, false);
    await waitFor(() => errors.length === 1, 3000, 'the client error');
    assert.deepEqual(errors, ['ERR_IPC_BUFFER_FULL']);
    assert.equal(server.stats().dropped.tooLarge, 1);
    a.write(aRequest.subarray(60004));
    assert.equal((await aDone).payload.toString(), 'got 70000');
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
    // allowPeer takes 1200 ms (within its own bound, requestTimeoutMs);
    // the request's second half comes 2600 ms after the connect. A deadline
    // running from the connect would drop the client at 2000 ms; the one
    // that starts when allowPeer allows runs until about 3200 ms.
    const server = await serve(t, p, testAppHandlerOr('ping'), {
      requestTimeoutMs: 2000,
      allowPeer: async () => {
        await sleep(1200);
        return true;
      },
    });
    server.on('clientError', (e) => errors.push(e.code));
    const socket = await rawConnect(t, gitPipeName(p));
    const chunks = [];
    socket.on('data', (d) => chunks.push(d));
    const request = frame('ping');
    socket.write(request.subarray(0, 6));
    await sleep(2600);
    socket.write(request.subarray(6));
    await new Promise((resolve) => (socket.closed ? resolve() : socket.once('close', resolve)));
    assert.equal(unframe(Buffer.concat(chunks)).payload.toString(), 'pong');
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

describe('stats()', () => {
  // The same fields and meanings as on POSIX (docs/design.md: the
  // transport's counters): each is driven to a known value and read back.
  it('counts connections by phase, responses, bytes and every kind of drop', async (t) => {
    const p = ipcPath(t);
    const inHandler = latch();
    const release = latch();
    const server = await serve(t, p, async (request) => {
      if (request.toString() !== 'hold') return 'pong';
      inHandler.fire();
      await release.fired;
      return 'held';
    }, { maxRequestBytes: 100, requestTimeoutMs: 500, threads: 1 });
    const stats = () => server.stats();

    // Three pings: "0008ping0000" in, "0008pong0000" out, 12 bytes each.
    for (let i = 0; i < 3; i++) assert.equal((await sendCommand(p, 'ping')).toString(), 'pong');
    await waitFor(() => stats().requests === 3, 3000, 'three responses counted');
    assert.equal(stats().bytesIn, 36);
    assert.equal(stats().bytesOut, 36);
    assert.deepEqual(stats().connections, { open: 0, sending: 0, awaitingAllowPeer: 0, beingAnswered: 0 });

    // A conversation in the handler, then a silent client beside it.
    const held = sendCommand(p, 'hold');
    await inHandler.fired;
    assert.equal(stats().connections.beingAnswered, 1);
    await rawConnect(t, gitPipeName(p));
    await waitFor(() => stats().connections.sending === 1, 3000, 'the silent client to be counted');
    assert.equal(stats().connections.open, 2);

    // A malformed request, and one over maxRequestBytes.
    const garbage = await rawConnect(t, gitPipeName(p));
    garbage.write('zzzz');
    await waitFor(() => stats().dropped.protocol === 1, 3000, 'the protocol drop');
    await rejection(sendCommand(p, Buffer.alloc(200, 'x')));
    await waitFor(() => stats().dropped.tooLarge === 1, 3000, 'the too-large drop');

    // The silent client runs out of requestTimeoutMs.
    await waitFor(() => stats().dropped.timeout === 1, 5000, 'the timeout drop');
    assert.equal(stats().connections.sending, 0);

    release.fire();
    assert.equal((await held).toString(), 'held');
    await waitFor(() => stats().requests === 4, 3000, 'the held response counted');
    const s = stats();
    assert.deepEqual(s.dropped, { protocol: 1, tooLarge: 1, timeout: 1, tooManyConnections: 0 });
    assert.deepEqual(s.connections, { open: 0, sending: 0, awaitingAllowPeer: 0, beingAnswered: 0 });
    // In: the pings, "0008hold0000", "zzzz" and at least the too-large
    // request's header. Out: the pongs and "0008held0000".
    assert.ok(s.bytesIn >= 36 + 12 + 4 + 4, `bytesIn ${s.bytesIn}`);
    assert.equal(s.bytesOut, 36 + 12);
  });

  // A client that has its whole response hangs up at once: the server's
  // hang-up watch and its last write complete together, and two workers
  // may handle them in either order. Every response counts, whichever
  // comes first (when the hang-up came first, 1 to 3 responses in 100
  // went uncounted here).
  it('counts every response, however fast its client hangs up', async (t) => {
    const p = ipcPath(t);
    const server = await serve(t, p, () => 'pong', { threads: 4 });
    const pairs = 150;
    for (let i = 0; i < pairs; i++) {
      const answers = await Promise.all([sendCommand(p, 'ping'), sendCommand(p, 'ping')]);
      assert.deepEqual(answers.map(String), ['pong', 'pong']);
    }
    const counted = () => `${server.stats().requests} of ${2 * pairs}`;
    await waitFor(() => server.stats().requests >= 2 * pairs, 10000, 'every response counted').catch((e) => {
      throw new Error(`${e.message}: ${counted()}`);
    });
    assert.equal(server.stats().requests, 2 * pairs);
    assert.equal(server.stats().bytesOut, 2 * pairs * 12); // "0008pong0000"
  });

  it('counts connections waiting for allowPeer, and those refused over maxConnections', async (t) => {
    const p = ipcPath(t);
    const decide = latch();
    const server = await serve(t, p, () => 'x', { maxConnections: 2, threads: 1, allowPeer: () => decide.fired.then(() => false) });
    // On Windows allowPeer is asked as soon as a client connects.
    await rawConnect(t, gitPipeName(p));
    await rawConnect(t, gitPipeName(p));
    await waitFor(() => server.stats().connections.open === 2, 3000, 'two open connections');
    assert.equal(server.stats().connections.awaitingAllowPeer, 2);
    // Closed at once: Node may see that as the end of the stream or, when
    // the close comes before it has set the pipe up, as EPIPE at connect.
    const third = net.connect(gitPipeName(p));
    third.on('error', () => {});
    t.onTestFinished(() => third.destroy());
    await new Promise((resolve) => third.once('close', resolve));
    await waitFor(() => server.stats().dropped.tooManyConnections === 1, 3000, 'the refused connection counted');
    decide.fire();
  });
});
