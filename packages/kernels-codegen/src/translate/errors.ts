import type { Node } from 'ts-morph';
import type { SourceLoc } from '../ir/nodes.js';

/**
 * A kernel source construct outside the DSL, or a DSL rule broken: located at
 * file:line:column (1-based) with a message that says what is allowed instead.
 */
export class DslError extends Error {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  /** The message without the location prefix. */
  readonly reason: string;
  constructor(loc: SourceLoc, reason: string) {
    super(`${loc.file}:${loc.line}:${loc.column}: error: ${reason}`);
    this.name = 'DslError';
    this.file = loc.file;
    this.line = loc.line;
    this.column = loc.column;
    this.reason = reason;
  }
}

export function locOf(node: Node): SourceLoc {
  const sf = node.getSourceFile();
  const { line, column } = sf.getLineAndColumnAtPos(node.getStart());
  return { file: sf.getFilePath(), line, column };
}

export function dslError(node: Node, reason: string): DslError {
  return new DslError(locOf(node), reason);
}
