// No option is silently ignored on any platform (docs/windows.md#options-that-differ):
// every option of createServer and of the clients is listed in
// test/win/option-support.mjs, per platform, with the test that shows its
// effect or a value that is refused. This file checks the list and the
// POSIX side; test/win/options.test.mjs checks the Windows side under Wine.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { createServer, sendCommand } from '../dist/index.js';
import { CLIENT_OPTION_NAMES, SERVER_OPTION_NAMES } from '../dist/options.js';
import { posix, repoRoot, socketPath } from './helpers.js';
import { CLIENT_OPTIONS, SERVER_OPTIONS } from './win/option-support.mjs';

type Support = { effect?: { file: string; title: string }; refused?: unknown };
type Table = Record<string, { posix: Support; win32: Support }>;
const server = SERVER_OPTIONS as Table;
const client = CLIENT_OPTIONS as Table;

describe('no option is silently ignored', () => {
  it('every option of createServer and of the clients is listed, for both platforms', () => {
    expect(Object.keys(server).sort()).toEqual(Object.keys(SERVER_OPTION_NAMES).sort());
    expect(Object.keys(client).sort()).toEqual(Object.keys(CLIENT_OPTION_NAMES).sort());
    for (const [name, support] of Object.entries({ ...server, ...client })) {
      for (const platform of ['posix', 'win32'] as const) {
        const s = support[platform];
        expect('refused' in s !== ('effect' in s), `${name} on ${platform}: an effect or a refused value`).toBe(true);
        if (!s.effect) continue;
        const text = fs.readFileSync(path.join(repoRoot, s.effect.file), 'utf8');
        expect(text.includes(s.effect.title), `${name} on ${platform}: no test "${s.effect.title}" in ${s.effect.file}`).toBe(true);
      }
    }
  });

  const refusedHere = (table: Table) => Object.entries(table).filter(([, s]) => 'refused' in s.posix);
  for (const [name, support] of refusedHere(server)) {
    it.runIf(posix)(`createServer refuses ${name} on POSIX (ERR_INVALID_ARG_VALUE), and nothing listens`, async () => {
      const p = socketPath();
      const attempt = Promise.resolve().then(() => createServer(p, () => 'x', { [name]: support.posix.refused }));
      await expect(attempt).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringMatching(new RegExp(`"options\\.${name}".*on POSIX`)) });
      expect(fs.existsSync(p)).toBe(false);
    });
  }
  for (const [name, support] of refusedHere(client)) {
    it.runIf(posix)(`the clients refuse ${name} on POSIX (ERR_INVALID_ARG_VALUE)`, async () => {
      const attempt = Promise.resolve().then(() => sendCommand(socketPath(), 'x', { [name]: support.posix.refused }));
      await expect(attempt).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    });
  }
});
