// An exception thrown by an IpcServer event listener behaves as it does for
// any EventEmitter in Node's core: an uncaught exception, which
// 'uncaughtException' sees and which by default ends the process.
import * as path from 'node:path';

import { describe, expect, it } from 'vitest';

import { exited, fixtures, socketPath, spawnNode } from './helpers';

const script = path.join(fixtures, 'throwing-listener.js');

describe.each(['clientError', 'handlerError', 'close'])('a throwing %s listener', (event) => {
  it("reaches process.on('uncaughtException')", async () => {
    const child = spawnNode(script, [socketPath(), event, 'handle']);
    expect(await exited(child)).toBe(42);
    expect(child.output()).toContain(`caught: thrown by a ${event} listener`);
    expect(child.output()).not.toContain('still running');
  }, 20000);

  it('ends the process by default, with the error on stderr', async () => {
    const child = spawnNode(script, [socketPath(), event, 'crash']);
    const code = await exited(child);
    expect(code).not.toBe(0);
    expect(child.output()).toContain(`thrown by a ${event} listener`);
    expect(child.output()).not.toContain('still running');
  }, 20000);
});
