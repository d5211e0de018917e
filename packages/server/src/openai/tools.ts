import { randomUUID } from 'node:crypto';
import { EngineError } from '@arkvale/engine';

/*
 * Tool calls (chat `tools`, `tool_choice`): the tools go to the model's chat template,
 * and a call is the model's reply as one JSON object {"name": ..., "arguments": {...}}.
 * When a call is required (`required`, or a named function), the reply is held by
 * constrained sampling to exactly such an object, its arguments valid under the tool's
 * parameters schema; under `auto`, a reply that is such an object is read as a call, any
 * other as text.
 */

export interface ToolDef {
  readonly type: 'function';
  readonly function: { readonly name: string; readonly description?: string; readonly parameters?: Record<string, unknown> };
}

export type ToolChoice = 'none' | 'auto' | 'required' | { readonly type: 'function'; readonly function: { readonly name: string } };

export interface ToolCall {
  readonly id: string;
  readonly type: 'function';
  readonly function: { readonly name: string; readonly arguments: string };
}

/** The tools a reply may call: none under `none`, the named one, or all. */
export function callableTools(tools: readonly ToolDef[], choice: ToolChoice | undefined): ToolDef[] {
  if (tools.length === 0 || choice === 'none') return [];
  if (typeof choice === 'object') {
    const named = tools.find((t) => t.function.name === choice.function.name);
    if (!named) {
      throw new EngineError(
        'invalid_request',
        `tool_choice names the function "${choice.function.name}", which is not among the tools (${tools.map((t) => t.function.name).join(', ')})`,
        'tool_choice',
      );
    }
    return [named];
  }
  return [...tools];
}

/** Whether the reply must be a call (`required`, or a named function). */
export function mustCall(tools: readonly ToolDef[], choice: ToolChoice | undefined): boolean {
  return tools.length > 0 && (choice === 'required' || typeof choice === 'object');
}

/** The JSON schema of one call among `tools`: its name, and arguments under that tool's parameters. */
export function callSchema(tools: readonly ToolDef[]): Record<string, unknown> {
  const one = (t: ToolDef) => ({
    type: 'object',
    properties: { name: { const: t.function.name }, arguments: t.function.parameters ?? { type: 'object' } },
    required: ['name', 'arguments'],
    additionalProperties: false,
  });
  return tools.length === 1 ? one(tools[0]) : { anyOf: tools.map(one) };
}

/** A reply read as a call to one of `tools`, or null when it is not one. */
export function parseToolCall(text: string, tools: readonly ToolDef[]): ToolCall[] | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
  const { name, arguments: args } = value as { name?: unknown; arguments?: unknown };
  if (typeof name !== 'string' || !tools.some((t) => t.function.name === name) || args === null || typeof args !== 'object') return null;
  return [{ id: `call_${randomUUID().replaceAll('-', '').slice(0, 24)}`, type: 'function', function: { name, arguments: JSON.stringify(args) } }];
}
