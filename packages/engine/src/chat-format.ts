import { readFileSync } from 'node:fs';
import { ChatTemplate, type ModelDir } from '@arkvale/model-llama';
import { EngineError } from './errors.js';

export interface ChatFormat {
  /** "model template (path)", "template file (path)" or "plain fallback". */
  readonly source: string;
  encode(messages: readonly { role: string; content: unknown }[]): number[];
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
    return { source, encode: (messages) => model.tokenizer.encode(messages.map((m) => messageText(m.content)).join('\n')) };
  }
  const t = template;
  return {
    source,
    encode: (messages) => {
      const plain = messages.map((m) => ({ role: m.role, content: messageText(m.content) }));
      return model.tokenizer.encode(t.render(plain, { addGenerationPrompt: true }), { addSpecialTokens: false });
    },
  };
}
