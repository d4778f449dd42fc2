// streamCommand() reads no faster than its consumer: past a high-water
// mark the native side stops reading and the server waits (its
// reply.write() promises stay pending), so memory stays bounded however
// large the response. Server and client run in child processes of their
// own, so that the RSS measured is the client's alone.
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { exited, fixtures, socketPath, spawnNode, waitForLine } from './helpers';

describe('stream backpressure', () => {
  it('a 300 MiB response read at 5 ms per chunk grows the client by less than 32 MB', async () => {
    const p = socketPath();
    const server = spawnNode(path.join(fixtures, 'stream-server.js'), [p]);
    await waitForLine(server, /listening/);
    const client = spawnNode(path.join(fixtures, 'slow-stream-client.js'), [p, '300', '5']);
    const line = await waitForLine(client, /^\{/, 120_000);
    expect(await exited(client)).toBe(0);
    const result = JSON.parse(line) as { bytes: number; growthBytes: number };
    expect(result.bytes).toBe(300 * 1024 * 1024);
    expect(result.growthBytes).toBeLessThan(32 * 1000 * 1000);
  }, 180_000);
});
