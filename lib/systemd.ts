// systemd socket activation: the listening sockets a service inherits
// (fd 3 onward), as sd_listen_fds(3) describes them: LISTEN_PID must be
// our pid (else the variables were meant for another process, e.g. our
// parent), LISTEN_FDS says how many, LISTEN_FDNAMES (optional) names them
// (FileDescriptorName= in the .socket unit). The variables are removed
// once read, so that children we start do not take the sockets for theirs.
//
// Pass the fd to createServer's `listenFd` option. Node's own `net` cannot
// listen on an inherited Unix socket (nodejs/node#44035).

/** The first fd systemd passes (SD_LISTEN_FDS_START). */
const FIRST_FD = 3;

export interface InheritedSocket {
  fd: number;
  /** Its name from LISTEN_FDNAMES, or `'unknown'` as systemd says when none is given. */
  name: string;
}

let cached: InheritedSocket[] | null = null;

function readEnvironment(env: NodeJS.ProcessEnv): InheritedSocket[] {
  const pid = Number(env.LISTEN_PID);
  const count = env.LISTEN_FDS !== undefined && /^\d+$/.test(env.LISTEN_FDS) ? Number(env.LISTEN_FDS) : 0;
  if (pid !== process.pid || count === 0) return [];
  const names = env.LISTEN_FDNAMES === undefined ? [] : env.LISTEN_FDNAMES.split(':');
  const sockets: InheritedSocket[] = [];
  for (let i = 0; i < count; i++) sockets.push({ fd: FIRST_FD + i, name: names[i] || 'unknown' });
  return sockets;
}

/**
 * The sockets systemd passed to this process (empty when it was not
 * socket-activated). Reads and removes LISTEN_PID, LISTEN_FDS and
 * LISTEN_FDNAMES on the first call; later calls return the same list.
 */
export function systemdListenFds(): InheritedSocket[] {
  if (cached === null) {
    cached = process.platform === 'win32' ? [] : readEnvironment(process.env);
    delete process.env.LISTEN_PID;
    delete process.env.LISTEN_FDS;
    delete process.env.LISTEN_FDNAMES;
  }
  return cached.map((s) => ({ ...s }));
}

/**
 * The fd of the inherited socket called `name` (LISTEN_FDNAMES), or of the
 * first one when no name is given; undefined when there is none, so that
 * `createServer(path, handler, { listenFd: systemdListenFd() })` binds the
 * path itself when the process was not socket-activated.
 */
export function systemdListenFd(name?: string): number | undefined {
  const sockets = systemdListenFds();
  const found = name === undefined ? sockets[0] : sockets.find((s) => s.name === name);
  return found?.fd;
}
