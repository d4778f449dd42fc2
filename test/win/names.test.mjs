// Pipe names as Git makes them (docs/protocol.md#windows-pipe-names): Git's own real path,
// which keeps the drive as written (subst, mapped and Wine's extra drives
// included), resolves `.`/`..` and links component by component, and starts
// relative paths from the current directory's final path. Each case checks
// both ends: the name our client looks for (a bare pipe made under the
// rule's name by the probe addon is found) and the name our server creates
// (opened by name with CreateFileW).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import { gitPipeName, ipcPath, NEEDS_PROBE, probe, rejection, repoRoot, serve, sipc, tempDir } from './helpers.mjs';

const { createServer, getActiveStateSync, sendCommand } = sipc;

const ERROR_SUCCESS = 0;

/** Our client looks for `name`, and our server listens at it. */
async function assertMeetsAt(t, p, name) {
  const bare = probe.createPipe(name, 0, 0);
  assert.equal(bare.error, ERROR_SUCCESS, `createPipe ${name}`);
  try {
    assert.equal(getActiveStateSync(p), 'listening', `our client does not look for ${p} at ${name}`);
  } finally {
    probe.closePipe(bare.id);
  }
  const server = await createServer(p, () => 'pong');
  try {
    assert.equal(probe.tryOpen(name), ERROR_SUCCESS, `our server for ${p} is not at ${name}`);
    assert.equal((await sendCommand(p, 'ping')).toString(), 'pong');
  } finally {
    await server.close({ timeoutMs: 0 });
  }
}

/** Runs `fn` with `dir` as the current directory. */
async function inDirectory(dir, fn) {
  const cwd = process.cwd();
  process.chdir(dir);
  try {
    return await fn();
  } finally {
    process.chdir(cwd);
  }
}

const aliasDrive = process.env.SIPC_WINTEST_ALIAS_DRIVE;
const NEEDS_ALIAS_DRIVE =
  !aliasDrive && 'needs a second drive letter for C:\\ (npm run test:win maps S: in the Wine prefix; on Windows: subst S: C:\\ and set SIPC_WINTEST_ALIAS_DRIVE=S:)';
const NEEDS_WINE_Z = !process.env.WINEPREFIX && "needs Wine's Z: drive (the Unix root) and WINEPREFIX";

describe("pipe names: Git's rule for every spelling of the path", { skip: NEEDS_PROBE }, () => {
  it('an absolute path keeps its drive and spelling: C:\\a\\b.ipc -> \\\\.\\pipe\\C_\\a\\b.ipc', async (t) => {
    const p = ipcPath(t, 'abs.ipc');
    const name = '\\\\.\\pipe\\' + p.replace(/^([A-Za-z]):/, '$1_');
    assert.equal(gitPipeName(p), name);
    await assertMeetsAt(t, p, name);
  });

  it('. and .. are resolved; .. after a missing directory is invalid-path (Git checks each component)', async (t) => {
    const dir = tempDir(t);
    fs.mkdirSync(path.join(dir, 'sub'));
    const p = `${dir}\\sub\\..\\.\\dots.ipc`;
    const name = '\\\\.\\pipe\\' + `${dir}\\dots.ipc`.replace(/^([A-Za-z]):/, '$1_');
    assert.equal(gitPipeName(p), name);
    await assertMeetsAt(t, p, name);
    const missing = `${dir}\\no-such-dir\\..\\dots.ipc`;
    assert.equal(getActiveStateSync(missing), 'invalid-path');
    assert.equal((await rejection(createServer(missing, () => 'x'))).code, 'ENOENT');
  });

  it('forward slashes become backslashes', async (t) => {
    const p = ipcPath(t, 'slashes.ipc').replace(/\\/g, '/');
    const name = gitPipeName(p);
    assert.ok(!name.includes('/'), name);
    await assertMeetsAt(t, p, name);
  });

  it("a relative path starts from the current directory's final path", async (t) => {
    const dir = tempDir(t);
    fs.mkdirSync(path.join(dir, 'sub'));
    const name = '\\\\.\\pipe\\' + path.join(fs.realpathSync.native(dir), 'rel.ipc').replace(/^([A-Za-z]):/, '$1_');
    await inDirectory(dir, async () => {
      assert.equal(gitPipeName('rel.ipc'), name);
      assert.equal(gitPipeName('sub\\..\\rel.ipc'), name);
      await assertMeetsAt(t, 'rel.ipc', name);
      await assertMeetsAt(t, 'sub/../rel.ipc', name);
    });
  });

  it('a second drive letter for the same folder keeps its own letter: S:\\x -> \\\\.\\pipe\\S_\\x, not C_', { skip: NEEDS_ALIAS_DRIVE }, async (t) => {
    const dir = tempDir(t);
    assert.match(dir, /^C:\\/i);
    const viaAlias = aliasDrive + dir.slice(2);
    assert.ok(fs.existsSync(viaAlias), `${viaAlias} does not exist`);
    const p = path.join(viaAlias, 'alias.ipc');
    const name = `\\\\.\\pipe\\${aliasDrive[0]}_${dir.slice(2)}\\alias.ipc`;
    assert.equal(gitPipeName(p), name);
    await assertMeetsAt(t, p, name);
    // The volume's final path (C:) is not what Git uses.
    const finalName = `\\\\.\\pipe\\C_${dir.slice(2)}\\alias.ipc`;
    const bare = probe.createPipe(finalName, 0, 0);
    try {
      assert.equal(getActiveStateSync(p), 'path-not-found');
    } finally {
      probe.closePipe(bare.id);
    }
    // A relative path from a current directory on S: starts from the
    // directory's final path, which may name another drive.
    await inDirectory(viaAlias, async () => {
      const relName = '\\\\.\\pipe\\' + path.join(fs.realpathSync.native(process.cwd()), 'alias.ipc').replace(/^([A-Za-z]):/, '$1_');
      assert.equal(gitPipeName('alias.ipc'), relName);
      await assertMeetsAt(t, 'alias.ipc', relName);
    });
  });

  it("a folder reached through Wine's Z: drive keeps Z: (the case Git's own helper showed)", { skip: NEEDS_WINE_Z }, async (t) => {
    const dir = tempDir(t);
    const prefix = process.env.WINEPREFIX.replace(/\//g, '\\');
    const viaZ = `Z:${prefix}\\drive_c\\${dir.slice(3)}`;
    assert.ok(fs.existsSync(viaZ), `${viaZ} does not exist`);
    const p = `${viaZ}\\alias`;
    const name = `\\\\.\\pipe\\Z_${prefix}\\drive_c\\${dir.slice(3)}\\alias`;
    assert.equal(gitPipeName(p), name);
    await assertMeetsAt(t, p, name);
  });

  it('mixed case is kept as written (pipe names compare without case, so both spellings meet)', async (t) => {
    const dir = tempDir(t);
    const upper = dir.toUpperCase();
    const lowerDrive = dir[0].toLowerCase() + dir.slice(1);
    const p = path.join(upper, 'Mixed.IPC');
    assert.equal(gitPipeName(p), `\\\\.\\pipe\\${upper[0]}_${upper.slice(2)}\\Mixed.IPC`);
    await assertMeetsAt(t, p, gitPipeName(p));
    const q = path.join(lowerDrive, 'mixed.ipc');
    assert.equal(gitPipeName(q), `\\\\.\\pipe\\${lowerDrive[0]}_${lowerDrive.slice(2)}\\mixed.ipc`);
    await assertMeetsAt(t, q, gitPipeName(q));
    // One server, reached through both spellings.
    await serve(t, q);
    assert.equal((await sendCommand(p.replace(/Mixed\.IPC$/, 'MIXED.ipc'), 'ping')).toString(), 'pong');
  });

  it('too long: ENAMETOOLONG to start, invalid-path to probe', async (t) => {
    const dir = tempDir(t);
    const p = path.join(dir, 'l'.repeat(256 - 9 - dir.length));
    assert.equal(gitPipeName(p).length, 257);
    assert.equal((await rejection(createServer(p, () => 'x'))).code, 'ENAMETOOLONG');
    assert.equal(getActiveStateSync(p), 'invalid-path');
    assert.equal((await rejection(sendCommand(p, 'x'))).state, 'invalid-path');
    // One character less fits.
    const fits = p.slice(0, -1);
    assert.equal(gitPipeName(fits).length, 256);
    await assertMeetsAt(t, fits, gitPipeName(fits));
  });

  it("the empty path: Git's message and state (invalid pipe/socket name '', invalid-path)", async () => {
    const cli = path.join(repoRoot, 'dist', 'cli.js');
    const { code, stderr } = await new Promise((resolve) => {
      const child = spawn(process.execPath, [cli, 'is-active', '--name='], { stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true });
      let err = '';
      child.stderr.on('data', (d) => (err += d));
      child.on('close', (c) => resolve({ code: c, stderr: err }));
    });
    assert.equal(code, 1);
    assert.match(stderr, /invalid pipe\/socket name ''/);
  });
});
