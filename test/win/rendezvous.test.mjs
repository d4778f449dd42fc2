// Where client and server meet on Windows: pipe names as Git makes them
// (docs/protocol.md#windows-pipe-names), the active state
// (docs/protocol.md#windows-active-state: WaitNamedPipeW), pipe instances
// and busy pipes (docs/protocol.md#windows-pipe-instances).
//
// Git's own real path keeps the drive as written (subst, mapped and Wine's
// extra drives included), resolves `.`/`..` and links component by
// component, and starts relative paths from the current directory's final
// path. Each case of Git's rule checks both ends: the name our client looks
// for (a bare pipe made under the rule's name by the probe addon is found)
// and the name our server creates (opened by name with CreateFileW).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { frame, gitPipeName, ipcPath, NEEDS_PROBE, probe, rawConnect, rawExchange, rejection, repoRoot, serve, sipc, sleep, tempDir, uniquePipeName, waitFor } from './helpers.mjs';
import { describe, it } from './runner.mjs';

const { createServer, getActiveState, getActiveStateSync, sendCommand, sendCommandSync } = sipc;

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
    await server.close({ force: true });
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

describe('getActiveState (docs/protocol.md#windows-active-state: WaitNamedPipeW)', () => {
  it('listening', async (t) => {
    const p = ipcPath(t);
    await serve(t, p);
    assert.equal(await getActiveState(p), 'listening');
    assert.equal(getActiveStateSync(p), 'listening');
  });

  it('path-not-found when no pipe has the name', async (t) => {
    const p = ipcPath(t);
    assert.equal(await getActiveState(p), 'path-not-found');
    assert.equal(getActiveStateSync(p), 'path-not-found');
  });

  it('invalid-path when the path cannot become a pipe name (its directory does not exist)', async (t) => {
    const p = path.join(tempDir(t), 'missing', 'x.ipc');
    assert.equal(await getActiveState(p), 'invalid-path');
  });

  it('leaves the server undisturbed (the probe never connects)', async (t) => {
    const p = ipcPath(t);
    const server = await serve(t, p);
    const errors = [];
    server.on('clientError', (e) => errors.push(e));
    await Promise.all(Array.from({ length: 30 }, () => getActiveState(p)));
    await sleep(50);
    assert.deepEqual(errors, []);
  });
});

describe('pipe names', () => {
  it('a path maps to \\\\.\\pipe\\ + its real path, with C: as C_ and / as \\ (Git\'s rule)', async (t) => {
    const p = ipcPath(t, 'fsmonitor--daemon.ipc');
    await serve(t, p);
    const name = gitPipeName(p);
    assert.match(name, /^\\\\\.\\pipe\\[A-Za-z]_\\.*\\fsmonitor--daemon\.ipc$/);
    // A client that knows only the rule (Node's net) reaches the server.
    const { data } = await rawExchange(name, frame('ping'));
    assert.equal(data.toString(), '0008pong0000');
  });

  it('forward slashes, other case and a relative path name the same pipe', async (t) => {
    const p = ipcPath(t);
    await serve(t, p);
    assert.equal((await sendCommand(p.replace(/\\/g, '/'), 'ping')).toString(), 'pong');
    assert.equal((await sendCommand(p.toUpperCase(), 'ping')).toString(), 'pong');
    const cwd = process.cwd();
    process.chdir(path.dirname(p));
    try {
      assert.equal((await sendCommand(path.basename(p), 'ping')).toString(), 'pong');
      assert.equal(getActiveStateSync(path.basename(p)), 'listening');
    } finally {
      process.chdir(cwd);
    }
  });

  it("a directory reached through a junction names the pipe of the junction's target", async (t) => {
    const real = tempDir(t);
    const link = path.join(tempDir(t), 'link');
    try {
      fs.symlinkSync(real, link, 'junction');
    } catch (error) {
      t.skip(`cannot create a junction here: ${error.code}`);
      return;
    }
    await serve(t, path.join(link, 'x.ipc'));
    // The target as the junction stores it (absolute, its own drive).
    assert.equal(gitPipeName(path.join(link, 'x.ipc')), gitPipeName(path.join(fs.readlinkSync(link), 'x.ipc')));
    if (probe) assert.equal(probe.tryOpen(gitPipeName(path.join(link, 'x.ipc'))), 0);
    assert.equal((await sendCommand(path.join(real, 'x.ipc'), 'ping')).toString(), 'pong');
  });

  it('a path that starts with \\\\.\\pipe\\ is the pipe name itself', async (t) => {
    const name = uniquePipeName();
    const server = await serve(t, name);
    assert.equal(server.path, name);
    assert.equal((await sendCommand(name, 'ping')).toString(), 'pong');
    assert.equal((await rawExchange(name, frame('ping'))).data.toString(), '0008pong0000');
    assert.equal(await getActiveState(name.replace(/\\/g, '/')), 'listening');
  });

  it('a pipe name over 256 characters: ENAMETOOLONG to start, invalid-path to probe', async (t) => {
    const name = '\\\\.\\pipe\\' + 'n'.repeat(260);
    const error = await rejection(createServer(name, () => 'x'));
    assert.equal(error.code, 'ENAMETOOLONG');
    assert.equal(await getActiveState(name), 'invalid-path');
    const longPath = path.join(tempDir(t), 'p'.repeat(240));
    assert.equal((await rejection(sendCommand(longPath, 'x'))).state, 'invalid-path');
  });
});

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

describe('instances', () => {
  it('many clients on few instances: 1 thread, 200 requests at once, all answered', async (t) => {
    const p = ipcPath(t);
    const server = await serve(t, p, (r) => Buffer.concat([Buffer.from('re:'), r]), { threads: 1 });
    const errors = [];
    server.on('clientError', (e) => errors.push(e));
    // Git allows busy clients 30 s on Windows; Wine needs a few ms per
    // connect, so 1 s (the default) is too short for the last of 200.
    const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => sendCommand(p, `n${i}`, { connectTimeoutMs: 15000 })));
    answers.forEach((a, i) => assert.equal(a.toString(), `re:n${i}`));
    assert.deepEqual(errors, []);
  });

  it('idle connections never make the pipe busy for others (an instance listens in their place)', async (t) => {
    const p = ipcPath(t);
    await serve(t, p, () => 'pong', { threads: 2 });
    for (let i = 0; i < 30; i++) await rawConnect(t, gitPipeName(p));
    // Replacing the last instance taken is asynchronous: wait until one listens.
    await waitFor(async () => (await getActiveState(p)) === 'listening', 3000, 'a listening instance');
    assert.equal((await sendCommand(p, 'x', { waitIfBusy: false })).toString(), 'pong');
  });
});

describe('a busy pipe (every instance taken)', { skip: NEEDS_PROBE }, () => {
  // A one-instance server (the probe addon) whose only instance a first
  // client holds: everyone else gets ERROR_PIPE_BUSY.
  async function busyPipe(t, holdMs) {
    const name = uniquePipeName('busy');
    const id = probe.busyServerStart(name, holdMs);
    let holder;
    await waitFor(
      async () => {
        try {
          holder = await rawConnect(t, name);
          return true;
        } catch {
          return false;
        }
      },
      5000,
      'the busy server',
    );
    const result = async () => {
      let r = null;
      await waitFor(() => (r = probe.busyServerResult(id)) !== null, 10000, 'the busy server to finish');
      return r;
    };
    t.onTestFinished(async () => {
      holder.destroy();
    });
    return { name, result };
  }

  it('without waitIfBusy: EBUSY at once, state not-listening; getActiveState says not-listening', async (t) => {
    const { name } = await busyPipe(t, 1500);
    const started = Date.now();
    const error = await rejection(sendCommand(name, 'ping', { waitIfBusy: false }));
    assert.equal(error.code, 'EBUSY');
    assert.equal(error.state, 'not-listening');
    assert.ok(Date.now() - started < 500);
    assert.equal(await getActiveState(name), 'not-listening');
  });

  it('waitIfBusy: WaitNamedPipeW until connectTimeoutMs, then ETIMEDOUT / not-listening', async (t) => {
    const { name } = await busyPipe(t, 2000);
    const started = Date.now();
    const error = await rejection(sendCommand(name, 'ping', { connectTimeoutMs: 300 }));
    const took = Date.now() - started;
    assert.equal(error.code, 'ETIMEDOUT');
    assert.equal(error.state, 'not-listening');
    assert.ok(took >= 250 && took < 1500, `took ${took} ms`);
  });

  it('waitIfBusy: connects as soon as the instance is free again, and is served', async (t) => {
    const { name, result } = await busyPipe(t, 400);
    const started = Date.now();
    const answer = await sendCommand(name, 'ping', { connectTimeoutMs: 5000 });
    assert.equal(answer.toString(), 'pong');
    assert.ok(Date.now() - started >= 200);
    assert.equal(await result(), 'served');
  });

  it('the sync client waits the same way', async (t) => {
    const { name } = await busyPipe(t, 2000);
    assert.throws(() => sendCommandSync(name, 'ping', { connectTimeoutMs: 200 }), { code: 'ETIMEDOUT', state: 'not-listening' });
    assert.throws(() => sendCommandSync(name, 'ping', { waitIfBusy: false }), { code: 'EBUSY' });
  });

  it('a cancel ends a busy wait promptly', async (t) => {
    const { name } = await busyPipe(t, 3000);
    const controller = new AbortController();
    const pending = rejection(sendCommand(name, 'ping', { connectTimeoutMs: 5000, signal: controller.signal }));
    await sleep(150);
    const started = Date.now();
    controller.abort();
    assert.equal((await pending).code, 'ABORT_ERR');
    assert.ok(Date.now() - started < 500);
  });
});
