// The client's JS thread busy while its exchanges wait. A small exchange
// waits for its response on the JS thread's side (docs/design.md#client);
// what must go on while the JS thread is busy is the I/O thread's, which
// takes such an exchange over: a large response is still read, so the
// server does not drop us for stalling, and timeoutMs still hangs up on
// time. The servers run in child processes, so that this process's busy
// JS thread holds only the client.
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { sendCommand } from '../../dist/index.js';
import { bigResponseText } from '../../dist/test-app.js';
import { fixtures, posix, socketPath, spawnNode, waitForLine } from '../helpers';
import { startServerChild } from '../server-child';

function busyFor(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // the JS thread is busy: the client's I/O thread must carry on
  }
}

describe.runIf(posix)('a client whose JS thread is busy', () => {
  it('a large response arriving while it is busy for longer than the server\'s write stall limit is still read whole', async () => {
    const p = socketPath();
    // 800 KB, far more than a socket buffer: the server's write stalls
    // unless someone reads, and it gives up after 500 ms.
    const server = await startServerChild(p, { requestTimeoutMs: 500 });
    const response = sendCommand(p, 'big');
    busyFor(2000);
    expect((await response).toString()).toBe(bigResponseText());
    expect(server.count('clientError')).toBe(0);
  }, 30000);

  it('timeoutMs hangs up at the deadline while it is busy, not when it is free again', async () => {
    const p = socketPath();
    const recorder = spawnNode(path.join(fixtures, 'hangup-recorder.js'), [p]);
    await waitForLine(recorder, /listening/);
    const closed = waitForLine(recorder, /closedAt/);
    const start = Date.now();
    const exchange = sendCommand(p, 'never answered', { timeoutMs: 200 }).catch((e: { code?: string }) => e);
    busyFor(1500);
    expect(await exchange).toMatchObject({ code: 'ERR_IPC_TIMEOUT' });
    const line = await closed;
    const closedAt = (JSON.parse(line) as { closedAt: number }).closedAt;
    expect(closedAt - start).toBeGreaterThanOrEqual(190);
    // At the deadline (200 ms; generous for a loaded machine), long before
    // the JS thread was free again (1500 ms).
    expect(closedAt - start).toBeLessThan(1200);
    recorder.kill();
  }, 30000);
});
