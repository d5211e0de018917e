// The one argument parser of tools/: node:util's parseArgs, strict, with typed values,
// defaults, `--help` (usage on stdout, exit code 0) and, for an unknown flag, a missing
// or bad value or a stray argument, one line on stderr naming it (exit code 2).
//
//   const { values, positionals, fail } = parseCommand({
//     usage: 'node tools/bench/decode-bench.mjs [options]',
//     about: 'What the script does (a few lines).',
//     options: {
//       batch: { type: 'string', value: 'N', default: '4', parse: int({ min: 1 }), help: 'sequences per step' },
//       quick: { type: 'boolean', help: 'fewer repeats' },
//     },
//     positionals: { names: 'OUT', min: 1, max: 1 }, // none when left out
//   });
//
// A string option's default is written as it would be typed; it goes through the same
// `parse` as a typed value, so the usage shows it (or `shownDefault`, where the default
// is computed) and the script gets its typed form.
// When a flag is given twice the last one wins (a wrapper's defaults can be overridden
// by later arguments). Plain Node, no dependencies: the GPU machine runs these scripts
// with the bundle's Node.
import { basename } from 'node:path';
import { parseArgs } from 'node:util';

/** A value or argument the command does not accept; its message names it. */
export class UsageError extends Error {}

/** A whole number at least `min`. */
export const int =
  ({ min = -Infinity } = {}) =>
  (text, flag) => {
    const n = Number(text);
    if (text.trim() === '' || !Number.isInteger(n) || n < min)
      throw new UsageError(`${flag}: expected a whole number${min > -Infinity ? ` >= ${min}` : ''}, got "${text}"`);
    return n;
  };

/** A finite number at least `min`, or above `above` (exclusive). */
export const number =
  ({ min = -Infinity, above = -Infinity } = {}) =>
  (text, flag) => {
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n) || n < min || !(n > above)) {
      const bound = min > -Infinity ? ` >= ${min}` : above > -Infinity ? ` above ${above}` : '';
      throw new UsageError(`${flag}: expected a number${bound}, got "${text}"`);
    }
    return n;
  };

/** One of `choices` (strings). */
export const oneOf =
  (...choices) =>
  (text, flag) => {
    if (!choices.includes(text)) throw new UsageError(`${flag}: expected one of ${choices.join(', ')}, got "${text}"`);
    return text;
  };

/** A comma-separated list, each item through `item` (default: the text itself), at least one. */
export const list =
  (item = (t) => t) =>
  (text, flag) => {
    const items = text.split(',');
    if (items.some((t) => t.trim() === '')) throw new UsageError(`${flag}: expected a comma-separated list without empty items, got "${text}"`);
    return items.map((t) => item(t.trim(), flag));
  };

/** The usage text of a spec: the usage line, what it does, then one line per option. */
export function usageText({ usage, about, options = {} }) {
  const rows = Object.entries(options).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : ''}--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`;
    const shown = o.shownDefault ?? o.default;
    const def = shown !== undefined && o.type === 'string' ? ` (default ${shown})` : '';
    return [flag, `${o.help ?? ''}${def}`];
  });
  rows.push(['-h, --help', 'print this text']);
  const width = Math.max(...rows.map(([f]) => f.length)) + 2;
  return [`usage: ${usage}`, ...(about ? ['', about.trim()] : []), '', 'options:', ...rows.map(([f, h]) => `  ${f.padEnd(width)}${h}`), ''].join('\n');
}

/**
 * Parses `argv` (default: this process's arguments) against `spec`; prints the usage
 * and exits 0 on --help, prints one line naming what is wrong and exits 2 on anything
 * it does not accept. Returns the typed values, the positionals and `fail(message)`
 * (the same one-line error, exit code 2) for checks of the script's own.
 */
export function parseCommand(spec) {
  const { options = {}, positionals: pos, argv = process.argv.slice(2) } = spec;
  const name = spec.name ?? basename(process.argv[1] ?? 'script');
  const fail = (message) => {
    process.stderr.write(`${name}: ${message} (--help for usage)\n`);
    process.exit(2);
  };
  const config = { help: { type: 'boolean', short: 'h' } };
  for (const [key, o] of Object.entries(options)) config[key] = { type: o.type, ...(o.short ? { short: o.short } : {}) };
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: config, strict: true, allowPositionals: Boolean(pos) });
  } catch (e) {
    if (!String(e.code).startsWith('ERR_PARSE_ARGS')) throw e;
    const unknown = /^Unknown option '([^']+)'/.exec(e.message);
    const stray = /^Unexpected argument '([^']*)'/.exec(e.message);
    const ambiguous = /^Option '([^']+)' argument is ambiguous/.exec(e.message);
    if (unknown) fail(`unknown option ${unknown[1]}`);
    if (stray) fail(`unexpected argument "${stray[1]}"`);
    if (ambiguous) fail(`${ambiguous[1]} needs a value (one that starts with - is written ${ambiguous[1]}=VALUE)`);
    fail(
      e.message
        .split('\n')[0]
        .split('. ')[0]
        .replace(/^\w/, (c) => c.toLowerCase()),
    );
  }
  if (parsed.values.help) {
    process.stdout.write(usageText(spec));
    process.exit(0);
  }
  const values = {};
  try {
    for (const [key, o] of Object.entries(options)) {
      const given = parsed.values[key];
      if (o.type === 'boolean') values[key] = given ?? o.default ?? false;
      else {
        const text = given ?? o.default;
        values[key] = text === undefined ? undefined : o.parse ? o.parse(text, `--${key}`) : text;
      }
    }
  } catch (e) {
    if (e instanceof UsageError) fail(e.message);
    throw e;
  }
  const positionals = parsed.positionals;
  if (pos) {
    const { names = 'ARGS', min = 0, max = Infinity } = pos;
    if (positionals.length < min) fail(`missing ${names}`);
    if (positionals.length > max) fail(`unexpected argument "${positionals[max]}"`);
  }
  return { values, positionals, fail };
}
