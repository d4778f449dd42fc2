// defaultSocketPath: a per-user private place, never a shared directory.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { createServer, defaultSocketPath, sendCommand } from '../dist/index.js';
import { onCleanup, posix, repoRoot, tempDir } from './helpers.js';

/** defaultSocketPath(name) in a fresh process with this environment: its result, or its error's code and message. */
function inChild(name: string, env: NodeJS.ProcessEnv): { path?: string; code?: string; message?: string } {
  const script = `try { console.log(JSON.stringify({ path: require('./dist/index.js').defaultSocketPath(${JSON.stringify(name)}) })) }
    catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }`;
  const clean = { ...process.env };
  delete clean.XDG_RUNTIME_DIR;
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: repoRoot, env: { ...clean, ...env } }).toString());
}

function privateDir(): string {
  const dir = tempDir('sipc-xdg-');
  fs.chmodSync(dir, 0o700);
  return dir;
}

describe.skipIf(!posix)('defaultSocketPath', () => {
  const uid = process.geteuid!();

  it('uses $XDG_RUNTIME_DIR when it is a private directory of ours', () => {
    const xdg = privateDir();
    expect(inChild('counter', { XDG_RUNTIME_DIR: xdg, TMPDIR: tempDir() })).toEqual({ path: path.join(xdg, 'counter.ipc') });
  });

  it('else makes a 0700 directory of ours under the temporary directory, and a server and client meet there', async () => {
    const tmp = tempDir();
    fs.chmodSync(tmp, 0o1777); // as /tmp: shared, sticky
    const shared = fs.mkdtempSync(path.join(tmp, 'x'));
    fs.chmodSync(shared, 0o755);
    expect(inChild('counter', { XDG_RUNTIME_DIR: shared, TMPDIR: tmp })).toEqual({ path: path.join(tmp, `simple-ipc-${uid}`, 'counter.ipc') });
    const dir = path.join(tmp, `simple-ipc-${uid}`);
    const st = fs.lstatSync(dir);
    expect([st.isDirectory(), st.uid, st.mode & 0o777]).toEqual([true, uid, 0o700]);
    // Called again (another process, the daemon): the same place.
    expect(inChild('counter', { TMPDIR: tmp }).path).toBe(path.join(dir, 'counter.ipc'));
    const saved = { TMPDIR: process.env.TMPDIR, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR };
    onCleanup(() => {
      for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
    });
    process.env.TMPDIR = tmp;
    delete process.env.XDG_RUNTIME_DIR;
    const socket = defaultSocketPath('meet');
    const server = await createServer(socket, () => 'here');
    onCleanup(() => server.close({ force: true }));
    expect((await sendCommand(defaultSocketPath('meet'), 'x')).toString()).toBe('here');
  });

  it('refuses a directory under that name that is not private to us, and leaves it alone', () => {
    const tmp = tempDir();
    const dir = path.join(tmp, `simple-ipc-${uid}`);
    fs.mkdirSync(dir, { mode: 0o755 });
    fs.chmodSync(dir, 0o755);
    expect(inChild('counter', { TMPDIR: tmp })).toMatchObject({ code: 'ERR_IPC_UNSAFE_DIRECTORY', message: expect.stringContaining('mode 0755') });
    expect(fs.lstatSync(dir).mode & 0o777).toBe(0o755);
    fs.rmdirSync(dir);
    // A symbolic link planted under the name, to a directory of ours.
    fs.symlinkSync(privateDir(), dir);
    expect(inChild('counter', { TMPDIR: tmp })).toMatchObject({ code: 'ERR_IPC_UNSAFE_DIRECTORY', message: expect.stringContaining('symbolic link') });
    fs.unlinkSync(dir);
    if (uid === 0) {
      // Another user's directory (we can make one only as root).
      fs.mkdirSync(dir, { mode: 0o700 });
      fs.chownSync(dir, 65534, 65534);
      expect(inChild('counter', { TMPDIR: tmp })).toMatchObject({ code: 'ERR_IPC_UNSAFE_DIRECTORY', message: expect.stringContaining('belongs to uid 65534') });
    }
  });

  it('takes a file name only', () => {
    for (const bad of ['', '.', '..', 'a/b', 'a\\b', 'a\0b']) {
      expect(() => defaultSocketPath(bad)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    }
    expect(() => defaultSocketPath(7 as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });
});
