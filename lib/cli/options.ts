// Option parsing, with the rules of Git's parse-options: --opt=value or
// --opt value, unique abbreviations (--tok), --no-<opt> to reset. Unlike
// Git's helper, which ignores them, other words are refused (a typo there
// would otherwise go unnoticed): docs/cli.md#differences-from-gits-helper.

export interface Options {
  name: string | null;
  threads: number;
  maxWait: number;
  bytecount: number;
  batchsize: number;
  byte: string | null;
  token: string | null;
}

type OptionKey = keyof Options;

const OPTION_TABLE: ReadonlyArray<{ long: string; key: OptionKey; kind: 'string' | 'integer' }> = [
  { long: 'name', key: 'name', kind: 'string' },
  { long: 'threads', key: 'threads', kind: 'integer' },
  { long: 'max-wait', key: 'maxWait', kind: 'integer' },
  { long: 'bytecount', key: 'bytecount', kind: 'integer' },
  { long: 'batchsize', key: 'batchsize', kind: 'integer' },
  { long: 'byte', key: 'byte', kind: 'string' },
  { long: 'token', key: 'token', kind: 'string' },
];

export class UsageError extends Error {
  constructor(
    message: string,
    readonly usage: 'none' | 'stdout' | 'stderr',
  ) {
    super(message);
  }
}

/** `--help` (the command's help, exit 0) or Git's `-h` (the usage, exit 129). */
export class HelpRequest extends Error {
  constructor(readonly long: boolean) {
    super(long ? '--help' : '-h');
  }
}

/**
 * An integer the way C's strtol(s, &end, 10) reads it, the whole string
 * consumed, then stored in a 32-bit int. Null if it is not a number.
 */
function parseCInteger(text: string): number | null {
  const m = /^[ \t\n\v\f\r]*([+-]?\d+)$/.exec(text);
  if (m === null) return null;
  let value = BigInt(m[1]!);
  const LONG_MAX = (1n << 63n) - 1n;
  const LONG_MIN = -(1n << 63n);
  if (value > LONG_MAX) value = LONG_MAX;
  if (value < LONG_MIN) value = LONG_MIN;
  return Number(BigInt.asIntN(32, value));
}

type OptionEntry = (typeof OPTION_TABLE)[number];
interface Match {
  entry: OptionEntry;
  negated: boolean;
  value: string | undefined;
}

function optionLabel(m: Match): string {
  return `--${m.negated ? 'no-' : ''}${m.entry.long}`;
}

/**
 * The table entry `--<body>` names: an exact name (or --no-<name>) wins;
 * otherwise one unique abbreviation; two or more are ambiguous.
 */
function findOption(body: string): Match {
  const equals = body.indexOf('=');
  const key = equals < 0 ? body : body.slice(0, equals);
  const inlineValue = equals < 0 ? undefined : body.slice(equals + 1);
  let abbreviation: Match | null = null;
  let ambiguous: Match | null = null;
  const candidate = (m: Match) => {
    if (abbreviation !== null) ambiguous = abbreviation;
    abbreviation = m;
  };
  for (const entry of OPTION_TABLE) {
    if (key === entry.long) return { entry, negated: false, value: inlineValue };
    if (entry.long.startsWith(key)) {
      candidate({ entry, negated: false, value: inlineValue });
      continue;
    }
    if ('no-'.startsWith(body)) {
      candidate({ entry, negated: true, value: undefined });
      continue;
    }
    if (!body.startsWith('no-')) continue;
    if (key.slice(3) === entry.long) return { entry, negated: true, value: inlineValue };
    if (entry.long.startsWith(body.slice(3))) candidate({ entry, negated: true, value: undefined });
  }
  if (ambiguous !== null) {
    const a = ambiguous as Match;
    const b = abbreviation as unknown as Match;
    throw new UsageError(`ambiguous option: ${body} (could be ${optionLabel(a)} or ${optionLabel(b)})`, 'stdout');
  }
  if (abbreviation === null) throw new UsageError(`unknown option \`${body}'`, 'stderr');
  return abbreviation;
}

/**
 * Stores the option `match` names into `options`; takes its value from the
 * next argument when it has none inline. Returns the index of the last
 * argument used.
 */
function applyOption(options: Options, match: Match, args: string[], i: number): number {
  const { entry, negated } = match;
  const optionName = `option \`${negated ? 'no-' : ''}${entry.long}'`;
  if (negated) {
    if (match.value !== undefined) throw new UsageError(`${optionName} takes no value`, 'none');
    if (entry.kind === 'integer') (options[entry.key] as number) = 0;
    else (options[entry.key] as string | null) = null;
    return i;
  }
  let value = match.value;
  if (value === undefined) {
    if (i + 1 >= args.length) throw new UsageError(`${optionName} requires a value`, 'none');
    value = args[++i]!;
  }
  if (entry.kind === 'integer') {
    const n = parseCInteger(value);
    if (n === null) throw new UsageError(`${optionName} expects a numerical value`, 'none');
    (options[entry.key] as number) = n;
  } else {
    (options[entry.key] as string | null) = value;
  }
  return i;
}

/** The subcommand's options, with Git's defaults and lower bounds. */
export function parseOptions(args: string[]): Options {
  const options: Options = {
    name: 'ipc-test',
    threads: 5,
    maxWait: 60,
    bytecount: 1024,
    batchsize: 10,
    byte: null,
    token: null,
  };

  let optionsEnded = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!optionsEnded && arg === '--') {
      optionsEnded = true;
      continue;
    }
    if (optionsEnded) throw new UsageError(`unexpected argument '${arg}'`, 'stderr');
    if (arg.startsWith('--')) {
      const body = arg.slice(2);
      if (body === 'help') throw new HelpRequest(true);
      i = applyOption(options, findOption(body), args, i);
      continue;
    }
    if (arg.startsWith('-') && arg.length > 1) {
      if (arg[1] === 'h') throw new HelpRequest(false);
      throw new UsageError(`unknown switch \`${arg[1]}'`, 'stderr');
    }
    throw new UsageError(`unexpected argument '${arg}'`, 'stderr');
  }

  if (options.threads < 1) options.threads = 1;
  if (options.maxWait < 0) options.maxWait = 0;
  if (options.bytecount < 1) options.bytecount = 1;
  if (options.batchsize < 1) options.batchsize = 1;
  return options;
}
