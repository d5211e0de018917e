import * as fs from 'node:fs';
import { ArkvaleError } from '@arkvale/core';

/** Message of an unknown thrown value. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function errno(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : undefined;
}

/** A MODEL_FILE error for a file that could not be opened or read, naming the path. */
export function fileReadError(path: string, e: unknown, what = 'file'): ArkvaleError {
  const code = errno(e);
  if (code === 'ENOENT') return new ArkvaleError('MODEL_FILE', `${what} not found: ${path}`);
  if (code === 'EISDIR') return new ArkvaleError('MODEL_FILE', `${what} ${path} is a directory, expected a file`);
  return new ArkvaleError('MODEL_FILE', `cannot read ${what} ${path}: ${errorMessage(e)}`);
}

export function isFile(path: string): boolean {
  try {
    return fs.statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * Reads and parses a JSON file that must hold an object. Every failure is an
 * ArkvaleError('MODEL_FILE') naming the path.
 */
export function readJsonObject(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    throw fileReadError(path, e);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ArkvaleError('MODEL_FILE', `${path} is not valid JSON: ${errorMessage(e)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ArkvaleError('MODEL_FILE', `${path} must hold a JSON object, got ${describeJson(value)}`);
  }
  return value as Record<string, unknown>;
}

/** Short description of a JSON value for error messages. */
export function describeJson(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}...` : value);
  if (typeof value === 'object') return 'an object';
  return String(value);
}
