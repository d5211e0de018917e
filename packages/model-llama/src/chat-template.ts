import * as fs from 'node:fs';
import * as path from 'node:path';
import { Template } from '@huggingface/jinja';
import { ArkvaleError, invalidArgument } from '@arkvale/core';
import { describeJson, errorMessage, fileReadError, isFile, readJsonObject } from './files.js';

export interface ChatMessage {
  readonly role: string;
  readonly content: unknown;
  readonly [key: string]: unknown;
}

export interface RenderChatOptions {
  /** Append the assistant turn's opening (transformers' `add_generation_prompt`). Default false, as in transformers. */
  readonly addGenerationPrompt?: boolean;
  /**
   * Which named template to use when tokenizer_config.json lists several. Default:
   * "tool_use" when `variables.tools` is given and such a template exists, else "default".
   */
  readonly templateName?: string;
  /** Further template variables (tools, documents, ...). */
  readonly variables?: Readonly<Record<string, unknown>>;
}

export interface ChatTemplateInit {
  /** Where the template came from, for error messages. */
  readonly source: string;
  /** Special tokens exposed to the template (bos_token, eos_token, ...). */
  readonly specialTokens?: Readonly<Record<string, string | null | undefined>>;
}

/**
 * Reads `chat_template` as transformers writes it: one template string, or a list of
 * `{ name, template }` objects. Returns name -> template ("default" for the single
 * string), or null when there is no template.
 */
export function parseChatTemplates(value: unknown, source: string): Record<string, string> | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return { default: value };
  const bad = (): ArkvaleError =>
    new ArkvaleError('MODEL_FILE', `${source}: "chat_template" must be a string or a list of {"name", "template"} objects, got ${describeJson(value)}`);
  const templates: Record<string, string> = {};
  if (Array.isArray(value)) {
    for (const item of value) {
      if (item === null || typeof item !== 'object') throw bad();
      const { name, template } = item as { name?: unknown; template?: unknown };
      if (typeof name !== 'string' || typeof template !== 'string') throw bad();
      templates[name] = template;
    }
  } else if (typeof value === 'object') {
    for (const [name, template] of Object.entries(value)) {
      if (typeof template !== 'string') throw bad();
      templates[name] = template;
    }
  } else {
    throw bad();
  }
  return Object.keys(templates).length > 0 ? templates : null;
}

/** A model's Jinja chat template(s), rendered with @huggingface/jinja. */
export class ChatTemplate {
  readonly source: string;
  readonly templates: Readonly<Record<string, string>>;
  private readonly specialTokens: Record<string, string>;
  private readonly compiled = new Map<string, Template>();

  constructor(templates: Readonly<Record<string, string>>, init: ChatTemplateInit) {
    if (Object.keys(templates).length === 0) throw invalidArgument('ChatTemplate: no templates given');
    this.templates = templates;
    this.source = init.source;
    this.specialTokens = {};
    for (const [k, v] of Object.entries(init.specialTokens ?? {})) if (typeof v === 'string') this.specialTokens[k] = v;
  }

  /**
   * The chat template of a model folder, in transformers' order of precedence:
   * `chat_template.jinja`, then `chat_template.json`, then tokenizer_config.json's
   * `chat_template`. Returns null when the model has none.
   */
  static fromDir(
    dir: string,
    tokenizerConfig: Readonly<Record<string, unknown>> | null,
    specialTokens: ChatTemplateInit['specialTokens'] = {},
  ): ChatTemplate | null {
    const jinja = path.join(dir, 'chat_template.jinja');
    if (isFile(jinja)) {
      let text: string;
      try {
        text = fs.readFileSync(jinja, 'utf8');
      } catch (e) {
        throw fileReadError(jinja, e);
      }
      return new ChatTemplate({ default: text }, { source: jinja, specialTokens });
    }
    const json = path.join(dir, 'chat_template.json');
    if (isFile(json)) {
      const templates = parseChatTemplates(readJsonObject(json).chat_template, json);
      if (templates) return new ChatTemplate(templates, { source: json, specialTokens });
    }
    const source = path.join(dir, 'tokenizer_config.json');
    const templates = parseChatTemplates(tokenizerConfig?.chat_template, source);
    return templates ? new ChatTemplate(templates, { source, specialTokens }) : null;
  }

  get names(): string[] {
    return Object.keys(this.templates);
  }

  /** Whether a template renders tool definitions (a "tool_use" template, or one that reads `tools`). */
  get supportsTools(): boolean {
    return 'tool_use' in this.templates || Object.values(this.templates).some((t) => /\btools\b/.test(t));
  }

  /** Renders the conversation to the prompt text (which already holds any BOS the template writes). */
  render(messages: readonly ChatMessage[], options: RenderChatOptions = {}): string {
    if (!Array.isArray(messages)) throw invalidArgument('chat messages must be an array');
    messages.forEach((m, i) => {
      if (m === null || typeof m !== 'object' || typeof m.role !== 'string') {
        throw invalidArgument(`chat message ${i} must be an object with a string "role"`);
      }
    });
    const name = this.pickName(options);
    const template = this.compile(name);
    try {
      return template.render({
        ...this.specialTokens,
        ...options.variables,
        messages: messages.map((m) => ({ ...m })),
        add_generation_prompt: options.addGenerationPrompt ?? false,
      });
    } catch (e) {
      throw invalidArgument(`chat template "${name}" of ${this.source} failed to render: ${errorMessage(e)}`);
    }
  }

  private pickName(options: RenderChatOptions): string {
    const names = this.names;
    if (options.templateName !== undefined) {
      if (!(options.templateName in this.templates)) {
        throw invalidArgument(`${this.source} has no chat template named "${options.templateName}" (available: ${names.join(', ')})`);
      }
      return options.templateName;
    }
    if (options.variables?.tools !== undefined && 'tool_use' in this.templates) return 'tool_use';
    if ('default' in this.templates) return 'default';
    if (names.length === 1) return names[0];
    throw invalidArgument(`${this.source} has several chat templates (${names.join(', ')}) and no "default"; pass templateName`);
  }

  private compile(name: string): Template {
    let t = this.compiled.get(name);
    if (t === undefined) {
      try {
        t = new Template(this.templates[name]);
      } catch (e) {
        throw new ArkvaleError('MODEL_FILE', `chat template "${name}" of ${this.source} does not parse: ${errorMessage(e)}`);
      }
      this.compiled.set(name, t);
    }
    return t;
  }
}

/** The error for chatting with a model that has no chat template. */
export function noChatTemplateError(dir: string): ArkvaleError {
  return new ArkvaleError(
    'UNSUPPORTED_MODEL',
    `the model in ${dir} has no chat template (no "chat_template" in tokenizer_config.json, no chat_template.jinja); ` +
      `it is not a chat model: give it a plain text prompt instead`,
  );
}
