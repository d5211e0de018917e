/*
 * JSON-schema errors in OpenAI's words. The validator (AJV, first error only) reports
 * a failed `anyOf` as one error per branch followed by "must match a schema in anyOf";
 * this module picks the branch the value was meant for (the one whose type it has)
 * and words the one error that matters as a single sentence naming the field by its
 * OpenAI path (`messages[0].content`), as OpenAI does:
 *
 *   Missing required parameter: 'messages[1].role'.
 *   Invalid type for 'messages[0].content': expected a string or an array of content parts, but got a number.
 *   Invalid value for 'max_tokens': must be an integer >= 1, got -3.
 *   Invalid value for 'n': must be 1, got 3; this server generates one choice per request.
 *
 * The schemas' annotations (`x-expected`, `x-plural`, `x-allowed`, `x-why`; see ./schemas.ts) supply
 * the words a bare schema lacks.
 */

/** One error as AJV reports it (Fastify's `error.validation` items). */
export interface SchemaError {
  readonly keyword: string;
  readonly instancePath: string;
  readonly schemaPath: string;
  readonly params: Record<string, unknown>;
  readonly message?: string;
}

/** What the 400 says: a sentence, the parameter's path (null for the body itself) and OpenAI's error code. */
export interface ValidationProblem {
  readonly message: string;
  readonly param: string | null;
  readonly code: string;
}

type Node = Record<string, unknown>;

interface Located {
  readonly param: string | null;
  readonly value: unknown;
}

/** A type error is kept apart until the end: two branches failing on type at one place merge their expectations. */
type Problem = ValidationProblem | { readonly type: true; readonly at: Located; readonly expected: readonly string[] };

const MAX_QUOTED = 40;

/**
 * Words the first error of a failed validation (`errors` as AJV lists them, `schema` the
 * schema they came from, `data` the value that failed it).
 */
export function explainValidation(errors: readonly SchemaError[], schema: unknown, data: unknown): ValidationProblem {
  const root = isNode(schema) ? schema : undefined;
  const problem = explain(errors, root, data);
  return problem ? finish(problem) : { message: 'The request body is not valid.', param: null, code: 'invalid_request' };
}

function explain(errors: readonly SchemaError[], root: Node | undefined, data: unknown): Problem | null {
  // The deciding error is the last one; any before it come from branches of an anyOf (or an if).
  let last = errors.length - 1;
  while (last >= 0 && errors[last].keyword === 'if') last--;
  if (last < 0) return null;
  const e = errors[last];
  if (e.keyword === 'anyOf' || e.keyword === 'oneOf') return explainBranches(e, errors.slice(0, last), root, data);
  return explainOne(e, root, data);
}

/** A failed anyOf: the error of the branch the value fits best, or a type error listing every branch. */
function explainBranches(e: SchemaError, before: readonly SchemaError[], root: Node | undefined, data: unknown): Problem | null {
  const at = locate(e.instancePath, data);
  const branches = root ? resolve(root, e.schemaPath) : undefined;
  // Without the schema (never for these routes), every branch that reported an error is a candidate.
  const scores = Array.isArray(branches)
    ? branches.map((b) => fit(b, at.value))
    : Array.from({ length: 1 + Math.max(-1, ...before.map((x) => branchOf(x.schemaPath, e.schemaPath))) }, () => 1);
  const best = Math.max(0, ...scores);
  if (best === 0 && root) return { type: true, at, expected: expectedOf(resolve(root, parentPath(e.schemaPath))) };
  const candidates: Problem[] = [];
  scores.forEach((score, i) => {
    if (score !== best) return;
    const prefix = `${e.schemaPath}/${i}/`;
    const own = before.filter((x) => x.schemaPath.startsWith(prefix));
    const problem = own.length ? explain(own, root, data) : null;
    if (problem) candidates.push(problem);
  });
  if (!candidates.length) return explainOne(e, root, data);
  // Among branches that fit as well, the one that got deepest into the value; type errors at one place merge.
  const deepest = Math.max(...candidates.map(depth));
  const top = candidates.filter((c) => depth(c) === deepest);
  const types = top.filter((c): c is Extract<Problem, { type: true }> => 'type' in c);
  if (types.length === top.length && types.every((t) => t.at.param === types[0].at.param)) {
    return { type: true, at: types[0].at, expected: types.flatMap((t) => t.expected) };
  }
  return top.find((c) => !('type' in c)) ?? top[0];
}

/** How deep into the body a problem lies: `messages[0].content` is 3. */
function depth(problem: Problem): number {
  const param = 'type' in problem ? problem.at.param : problem.param;
  return param === null ? 0 : param.split(/[.[]/).length;
}

/** The branch of the anyOf at `anyOfPath` that an error at `schemaPath` comes from (-1 if none). */
function branchOf(schemaPath: string, anyOfPath: string): number {
  const m = schemaPath.startsWith(`${anyOfPath}/`) ? /^(\d+)\//.exec(schemaPath.slice(anyOfPath.length + 1)) : null;
  return m ? Number(m[1]) : -1;
}

/** How well a value fits a branch: 0 not its type, 1 its type, 2 also its first item's type. */
function fit(schema: unknown, value: unknown): number {
  if (!isNode(schema)) return 1;
  if (Array.isArray(schema.anyOf)) return Math.max(0, ...schema.anyOf.map((b) => fit(b, value)));
  if (schema.type !== undefined && !hasType(schema.type, value)) return 0;
  if (Array.isArray(value) && value.length > 0 && isNode(schema.items)) return fit(schema.items, value[0]) > 0 ? 2 : 1;
  return 1;
}

/** Loose on integers: 1.5 fits an integer's branch, where it gets "must be an integer". */
function hasType(type: unknown, value: unknown): boolean {
  if (Array.isArray(type)) return type.some((t) => hasType(t, value));
  switch (type) {
    case 'null':
      return value === null;
    case 'array':
      return Array.isArray(value);
    case 'object':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
    case 'integer':
      return typeof value === 'number';
    default:
      return typeof value === type;
  }
}

function explainOne(e: SchemaError, root: Node | undefined, data: unknown): Problem {
  const at = locate(e.instancePath, data);
  const node = root ? resolve(root, parentPath(e.schemaPath)) : undefined;
  const n: Node = isNode(node) ? node : {};
  const p = e.params;
  const value = at.value;
  const why = typeof n['x-why'] === 'string' ? (n['x-why'] as string) : undefined;
  const allowed = typeof n['x-allowed'] === 'string' ? (n['x-allowed'] as string) : undefined;
  const invalid = (requirement: string, got: string, code: string): ValidationProblem => ({
    message: `Invalid value for ${name(at)}: ${requirement}, got ${got}${why ? `; ${why}` : ''}.`,
    param: at.param,
    code: why ? 'unsupported_value' : code,
  });
  switch (e.keyword) {
    case 'required': {
      const missing = String(p.missingProperty);
      const param = at.param === null ? missing : `${at.param}.${missing}`;
      return { message: `Missing required parameter: '${param}'.`, param, code: 'missing_required_parameter' };
    }
    case 'type':
      if (hasType('number', value) && (p.type === 'integer' || n.type === 'integer')) {
        return invalid(`must be ${allowed ?? range({ ...n, type: 'integer' })}`, show(value), 'invalid_type');
      }
      return { type: true, at, expected: expectedOf(isNode(node) ? node : { type: p.type }) };
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum': {
      const side = e.keyword.toLowerCase().endsWith('minimum') ? 'below_min_value' : 'above_max_value';
      const limit: Node = isNode(node) ? n : { type: 'number', [e.keyword]: p.limit };
      return invalid(`must be ${allowed ?? range(limit)}`, show(value), `${limit.type === 'integer' ? 'integer' : 'decimal'}_${side}`);
    }
    case 'enum': {
      const values = Array.isArray(p.allowedValues) ? p.allowedValues : Array.isArray(n.enum) ? n.enum : [];
      return invalid(`must be ${allowed ?? (values.length === 1 ? show(values[0]) : `one of ${orList(values.map(show))}`)}`, show(value), 'invalid_value');
    }
    case 'const':
      return invalid(`must be ${allowed ?? show(p.allowedValue)}`, show(value), 'invalid_value');
    case 'not':
      return invalid(`must be ${allowed ?? 'left out'}`, show(value), 'invalid_value');
    case 'minLength': {
      const limit = Number(p.limit);
      const len = typeof value === 'string' ? value.length : 0;
      if (limit === 1) return invalid('must be a non-empty string', 'an empty string', 'empty_string');
      return invalid(`must be at least ${count(limit, 'character')} long`, count(len, 'character'), 'string_below_min_length');
    }
    case 'maxLength':
      return invalid(
        `must be at most ${count(Number(p.limit), 'character')} long`,
        count(typeof value === 'string' ? value.length : 0, 'character'),
        'string_above_max_length',
      );
    case 'minItems': {
      const limit = Number(p.limit);
      if (limit === 1) return invalid('must be a non-empty array', 'an empty array', 'empty_array');
      return invalid(`must have at least ${count(limit, 'entry')}`, count(Array.isArray(value) ? value.length : 0, 'entry'), 'array_below_min_length');
    }
    case 'maxItems': {
      const limit = Number(p.limit);
      const got = count(Array.isArray(value) ? value.length : 0, 'entry');
      return invalid(limit === 0 ? 'must be an empty array' : `must have at most ${count(limit, 'entry')}`, got, 'array_above_max_length');
    }
    case 'anyOf':
    case 'oneOf':
      return { type: true, at, expected: isNode(node) ? expectedOf(node) : ['a valid value'] };
    default:
      // A keyword these schemas do not use: AJV's own words, as one sentence.
      return invalid(e.message ?? 'is not valid', show(value), 'invalid_value');
  }
}

function finish(problem: Problem): ValidationProblem {
  if (!('type' in problem)) return problem;
  const expected = orList([...new Set(problem.expected)]);
  const got = typeName(problem.at.value);
  if (problem.at.param === null) return { message: `The request body must be ${expected}, but got ${got}.`, param: null, code: 'invalid_type' };
  return { message: `Invalid type for ${name(problem.at)}: expected ${expected}, but got ${got}.`, param: problem.at.param, code: 'invalid_type' };
}

const name = (at: Located) => (at.param === null ? 'the request body' : `'${at.param}'`);

/** `/messages/0/content` in `data` -> `messages[0].content` and the value there. */
function locate(instancePath: string, data: unknown): Located {
  const segments = instancePath.split('/').slice(1).map(unescapePointer);
  let param = '';
  let value = data;
  for (const s of segments) {
    param += Array.isArray(value) ? `[${s}]` : param ? `.${s}` : s;
    value = value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[s] : undefined;
  }
  return { param: param || null, value };
}

/** The schema node at `#/properties/n/anyOf/0`. */
function resolve(root: Node, schemaPath: string): unknown {
  let node: unknown = root;
  for (const s of schemaPath.replace(/^#/, '').split('/').slice(1)) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[unescapePointer(decodeURIComponent(s))];
  }
  return node;
}

const parentPath = (schemaPath: string) => schemaPath.slice(0, Math.max(0, schemaPath.lastIndexOf('/')));
const unescapePointer = (s: string) => s.replace(/~1/g, '/').replace(/~0/g, '~');
const isNode = (v: unknown): v is Node => typeof v === 'object' && v !== null && !Array.isArray(v);

/** What a schema node accepts, as alternatives in words ("a string", "an array of strings"); null is left unsaid. */
function expectedOf(node: unknown): string[] {
  if (!isNode(node)) return ['a valid value'];
  if (typeof node['x-expected'] === 'string') return [node['x-expected']];
  if (Array.isArray(node.anyOf)) {
    const all = node.anyOf.flatMap((b) => expectedOf(b));
    const some = all.filter((d) => d !== 'null');
    return some.length ? some : all;
  }
  const types = Array.isArray(node.type) ? node.type : [node.type];
  return types.map((t) => {
    if (t === 'array') return isNode(node.items) ? `an array of ${plural(node.items)}` : 'an array';
    return TYPE_WORDS[String(t)] ?? 'a valid value';
  });
}

const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'a boolean',
  object: 'an object',
  array: 'an array',
  null: 'null',
};

function plural(items: Node): string {
  if (typeof items['x-plural'] === 'string') return items['x-plural'];
  const words: Record<string, string> = { string: 'strings', integer: 'integers', number: 'numbers', boolean: 'booleans', object: 'objects', array: 'arrays' };
  return words[String(items.type)] ?? 'values';
}

/** "an integer >= 1", "a number between 0 and 2", "a number > 0 and <= 1", "1". */
function range(n: Node): string {
  const noun = n.type === 'integer' ? 'an integer' : 'a number';
  const { minimum: min, maximum: max, exclusiveMinimum: xmin, exclusiveMaximum: xmax } = n as Record<string, number | undefined>;
  if (min !== undefined && max !== undefined) return min === max ? String(min) : `${noun} between ${min} and ${max}`;
  const bounds = [
    min !== undefined ? `>= ${min}` : xmin !== undefined ? `> ${xmin}` : '',
    max !== undefined ? `<= ${max}` : xmax !== undefined ? `< ${xmax}` : '',
  ];
  const said = bounds.filter(Boolean).join(' and ');
  return said ? `${noun} ${said}` : noun;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  return TYPE_WORDS[typeof v] ?? typeof v;
}

/** A value in a message: strings quoted and cut short, numbers and booleans as written, containers by type. */
function show(v: unknown): string {
  if (typeof v === 'string') {
    const s = JSON.stringify(v.length > MAX_QUOTED ? v.slice(0, MAX_QUOTED) : v)
      .slice(1, -1)
      .replace(/'/g, "\\'");
    return `'${s}${v.length > MAX_QUOTED ? '...' : ''}'`;
  }
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  return typeName(v);
}

function count(k: number, noun: string): string {
  const many = noun.endsWith('y') ? `${noun.slice(0, -1)}ies` : `${noun}s`;
  return `${k} ${k === 1 ? noun : many}`;
}

function orList(items: readonly string[]): string {
  if (items.length <= 1) return items[0] ?? 'a valid value';
  if (items.length === 2) return `${items[0]} or ${items[1]}`;
  return `${items.slice(0, -1).join(', ')}, or ${items[items.length - 1]}`;
}
