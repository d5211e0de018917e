import { readFileSync } from 'node:fs';
import { ChatTemplate, type ModelDir } from '@arkvale/model-llama';
import { EngineError } from './errors.js';

/** A chat message as templates take it: its role and content, and for tool use its calls or the call it answers. */
export interface ChatInputMessage {
  readonly role: string;
  readonly content: unknown;
  readonly tool_calls?: unknown;
  readonly tool_call_id?: string;
  readonly name?: string;
}

export interface ChatFormat {
  /** "model template (path)", "template file (path)" or "plain fallback". */
  readonly source: string;
  /** Whether the template renders tool definitions (`tools` may be passed). */
  readonly supportsTools: boolean;
  encode(messages: readonly ChatInputMessage[], options?: { readonly tools?: readonly unknown[] }): number[];
}

/** A message's text: a string, or the text parts of a content array. */
export function messageText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (content === null || content === undefined) return '';
  if (Array.isArray(content)) {
    return content.map((p) => (p && typeof p === 'object' && typeof (p as { text?: unknown }).text === 'string' ? (p as { text: string }).text : '')).join('');
  }
  throw new EngineError('invalid_request', 'message content must be a string or an array of text parts', 'messages');
}

/**
 * How chat messages become a prompt: `templateFile` when given, else the model's own
 * chat template, else the plain fallback: the messages' contents joined in order with
 * a newline, encoded with the tokenizer's BOS (for models with no template, such as
 * the bundled one).
 */
export function createChatFormat(model: ModelDir, templateFile?: string): ChatFormat {
  const specialTokens = { bos_token: model.tokenizer.bosToken, eos_token: model.tokenizer.eosToken };
  let template: ChatTemplate | null = model.chatTemplate;
  let source = template ? `model template (${template.source})` : 'plain fallback (message contents joined by newlines)';
  if (templateFile) {
    template = new ChatTemplate({ default: readFileSync(templateFile, 'utf8') }, { source: templateFile, specialTokens });
    source = `template file (${templateFile})`;
  }
  if (!template) {
    return {
      source,
      supportsTools: false,
      encode: (messages, options) => {
        if (options?.tools?.length) throw noTools(source);
        return model.tokenizer.encode(messages.map((m) => messageText(m.content)).join('\n'));
      },
    };
  }
  const t = template;
  return {
    source,
    supportsTools: t.supportsTools,
    encode: (messages, options) => {
      const tools = options?.tools?.length ? options.tools : undefined;
      if (tools && !t.supportsTools) throw noTools(source);
      // Tool calls and the call a tool message answers pass through to templates that read them.
      const plain = messages.map((m) => ({ ...m, content: messageText(m.content) }));
      return model.tokenizer.encode(t.render(plain, { addGenerationPrompt: true, ...(tools ? { variables: { tools } } : {}) }), {
        addSpecialTokens: false,
      });
    },
  };
}

function noTools(source: string): EngineError {
  return new EngineError(
    'invalid_request',
    `this model's chat format (${source}) does not render tools; serve it with a chat template that does (--chat-template)`,
    'tools',
  );
}
