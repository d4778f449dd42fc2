// Arguments of the daemon author's commands (call, state, stop), parsed
// the way most tools parse them: `--opt=value` or `--opt value`, flags
// without a value, `--` ends the options, `-` is an argument (stdin).
// Every word is either a known option or one of the positional arguments
// the command takes: anything else is a usage error naming it.
import { nearest } from './suggest.js';

export class ArgsError extends Error {}

export interface OptionSpec {
  /** Long name, without the dashes. */
  long: string;
  /** A one-letter alias (`-t`), if any. */
  short?: string;
  /** Whether it takes a value. */
  value: boolean;
}

export interface ParsedArgs {
  positional: string[];
  options: Map<string, string | true>;
}

/**
 * Splits `args` into options of `specs` and at most `maxPositional`
 * positional arguments (at least `minPositional`, named in `names` for
 * the error messages).
 */
export function parseArgs(args: string[], specs: readonly OptionSpec[], names: readonly string[], minPositional: number): ParsedArgs {
  const positional: string[] = [];
  const options = new Map<string, string | true>();
  let onlyPositional = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!onlyPositional && arg === '--') {
      onlyPositional = true;
      continue;
    }
    if (!onlyPositional && arg.startsWith('-') && arg !== '-') {
      const long = arg.startsWith('--');
      const body = long ? arg.slice(2) : arg.slice(1);
      const equals = body.indexOf('=');
      const key = equals < 0 ? body : body.slice(0, equals);
      const spec = specs.find((s) => (long ? s.long === key : s.short === key));
      if (spec === undefined) {
        const guess = long ? nearest(key, specs.map((s) => s.long)) : null;
        throw new ArgsError(`unknown option '${long ? '--' : '-'}${key}'${guess === null ? '' : ` (did you mean --${guess}?)`}`);
      }
      if (!spec.value) {
        if (equals >= 0) throw new ArgsError(`option '--${spec.long}' takes no value`);
        options.set(spec.long, true);
        continue;
      }
      let value: string;
      if (equals >= 0) value = body.slice(equals + 1);
      else if (i + 1 < args.length) value = args[++i]!;
      else throw new ArgsError(`option '--${spec.long}' needs a value`);
      options.set(spec.long, value);
      continue;
    }
    if (positional.length >= names.length) throw new ArgsError(`unexpected argument '${arg}'`);
    positional.push(arg);
  }
  if (positional.length < minPositional) throw new ArgsError(`missing <${names[positional.length]}>`);
  return { positional, options };
}

/** `--timeout` and the like: seconds, decimals allowed, above 0; in ms. */
export function parseSeconds(option: string, text: string): number {
  const seconds = /^\d+(\.\d+)?$|^\.\d+$/.test(text) ? Number(text) : NaN;
  if (!(seconds > 0) || seconds > 2147483) throw new ArgsError(`option '--${option}' expects a number of seconds above 0, not '${text}'`);
  return Math.ceil(seconds * 1000);
}
