// `await using`: IpcServer is an async disposable (Symbol.asyncDispose),
// as Node's own handles are, and its types say so.
import * as fs from 'node:fs';
import { describe, expect, expectTypeOf, it } from 'vitest';

import { createServer, getActiveState, type IpcServer } from '../dist/index.js';
import { socketPath } from './helpers.js';

describe('Symbol.asyncDispose', () => {
  it('IpcServer is typed as AsyncDisposable', () => {
    expectTypeOf<IpcServer>().toMatchTypeOf<AsyncDisposable>();
  });

  it('`await using` closes the server at the end of the block, removing its socket file', async () => {
    const p = socketPath();
    {
      await using server = await createServer(p, () => 'in scope');
      expect(server.path).toBe(p);
      expect(await getActiveState(p)).toBe('listening');
    }
    expect(await getActiveState(p)).toBe('not-listening');
    expect(fs.existsSync(p)).toBe(false);
  });
});
