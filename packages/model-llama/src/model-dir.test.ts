import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ReferenceBackend } from '@arkvale/core';
import { countParameters, describeModel, kvGeometry, openModelDir } from './model-dir.js';
import { TINY_MODEL_DIR, copyTinyModel, editJson, expectArkvaleError, makeTmpDir, removeTmpDirs } from './test-support/fixtures.js';

afterAll(removeTmpDirs);

describe('openModelDir', () => {
  it('opens the bundled model', async () => {
    const m = openModelDir(TINY_MODEL_DIR);
    expect(m.dir).toBe(path.resolve(TINY_MODEL_DIR));
    expect(m.config.numLayers).toBe(4);
    expect(m.tokenizer.encode('Hello world')).toEqual([1, 42, 71, 288, 81, 268, 267, 285]);
    expect(m.tokenizer.eosIds).toEqual([2]);
    expect(m.generation).toEqual({ bosTokenId: 1, eosTokenIds: [2], maxNewTokens: 64, doSample: false });
    expect(m.chatTemplate).toBeNull();
    expect(m.weightDtypes).toEqual(['f16']);
    expect(m.weightBytes).toBe(13_464_064 * 2);
    const w = await m.loadWeights(new ReferenceBackend());
    expect(w.layers.length).toBe(4);
  });

  it('names a missing folder and a missing config.json', () => {
    const missing = path.join(makeTmpDir(), 'no-such-model');
    expectArkvaleError(() => openModelDir(missing), 'MODEL_FILE', missing, 'not found');
    const empty = makeTmpDir();
    expectArkvaleError(() => openModelDir(empty), 'MODEL_FILE', path.join(empty, 'config.json'));
    const file = path.join(empty, 'file.txt');
    fs.writeFileSync(file, 'x');
    expectArkvaleError(() => openModelDir(file), 'MODEL_FILE', file, 'not a folder');
  });

  it('rejects an unsupported architecture, naming config.json and the field', () => {
    const dir = copyTinyModel();
    editJson(path.join(dir, 'config.json'), (c) => {
      c.model_type = 'gpt2';
      c.architectures = ['GPT2LMHeadModel'];
    });
    expectArkvaleError(() => openModelDir(dir), 'UNSUPPORTED_MODEL', path.join(dir, 'config.json'), '"model_type"', 'gpt2');
  });

  it('checks tensor shapes against the config when opening', () => {
    const dir = copyTinyModel();
    editJson(path.join(dir, 'config.json'), (c) => {
      c.intermediate_size = 1024;
    });
    expectArkvaleError(() => openModelDir(dir), 'MODEL_FILE', '"model.layers.0.mlp.gate_proj.weight"', '[1536, 512]', '[1024, 512]', 'intermediate_size 1024');
  });

  it('names a missing tokenizer.json and a tokenizer larger than the vocabulary', () => {
    const dir = copyTinyModel();
    fs.rmSync(path.join(dir, 'tokenizer.json'));
    expectArkvaleError(() => openModelDir(dir), 'MODEL_FILE', path.join(dir, 'tokenizer.json'));
    const small = copyTinyModel();
    editJson(path.join(small, 'config.json'), (c) => {
      c.vocab_size = 800;
    });
    expectArkvaleError(() => openModelDir(small), 'MODEL_FILE', 'vocab_size 800');
  });

  it('merges EOS ids from config.json and generation_config.json', () => {
    const dir = copyTinyModel();
    editJson(path.join(dir, 'generation_config.json'), (g) => {
      g.eos_token_id = [2, 7];
      g.temperature = 0.7;
    });
    const m = openModelDir(dir);
    expect([...m.tokenizer.eosIds].sort((a, b) => a - b)).toEqual([2, 7]);
    expect(m.generation.temperature).toBe(0.7);
    editJson(path.join(dir, 'generation_config.json'), (g) => {
      g.top_p = 3;
    });
    expectArkvaleError(() => openModelDir(dir), 'INVALID_CONFIG', 'generation_config.json', '"top_p"');
  });
});

describe('chat templates through openModelDir', () => {
  const TEMPLATE =
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]{% elif m['role'] == 'assistant' %} {{ m['content'] }}{{ eos_token }}{% else %}{{ raise_exception('unknown role ' + m['role']) }}{% endif %}{% endfor %}{% if add_generation_prompt %} ANSWER:{% endif %}";
  const messages = [
    { role: 'user', content: 'Hi' },
    { role: 'assistant', content: 'Hello' },
    { role: 'user', content: 'Key?' },
  ];

  it('explains that the bundled model has no chat template', () => {
    const m = openModelDir(TINY_MODEL_DIR);
    expectArkvaleError(() => m.applyChatTemplate(messages), 'UNSUPPORTED_MODEL', path.resolve(TINY_MODEL_DIR), 'no chat template');
  });

  it('renders a string template with bos/eos and add_generation_prompt, and tokenizes without a second BOS', () => {
    const dir = copyTinyModel();
    editJson(path.join(dir, 'tokenizer_config.json'), (c) => {
      c.chat_template = TEMPLATE;
    });
    const m = openModelDir(dir);
    expect(m.chatTemplate?.names).toEqual(['default']);
    expect(m.applyChatTemplate(messages)).toBe('<s>[INST] Hi [/INST] Hello</s>[INST] Key? [/INST]');
    expect(m.applyChatTemplate(messages, { addGenerationPrompt: true })).toBe('<s>[INST] Hi [/INST] Hello</s>[INST] Key? [/INST] ANSWER:');
    const ids = m.encodeChat(messages, { addGenerationPrompt: true });
    expect(ids[0]).toBe(1);
    expect(ids[1]).not.toBe(1);
    expect(ids).toContain(2);
  });

  it('renders the list-of-named-templates form and chat_template.jinja', () => {
    const dir = copyTinyModel();
    editJson(path.join(dir, 'tokenizer_config.json'), (c) => {
      c.chat_template = [
        { name: 'default', template: '{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}' },
        { name: 'tool_use', template: 'TOOLS {{ tools | length }}{% for m in messages %}<{{ m.role }}>{% endfor %}' },
      ];
    });
    const m = openModelDir(dir);
    expect(m.chatTemplate?.names).toEqual(['default', 'tool_use']);
    expect(m.applyChatTemplate([{ role: 'user', content: 'x' }])).toBe('<user>x');
    expect(m.applyChatTemplate([{ role: 'user', content: 'x' }], { variables: { tools: [{ name: 'f' }] } })).toBe('TOOLS 1<user>');
    expect(m.applyChatTemplate([{ role: 'user', content: 'x' }], { templateName: 'tool_use', variables: { tools: [] } })).toBe('TOOLS 0<user>');
    expectArkvaleError(() => m.applyChatTemplate([], { templateName: 'rag' }), 'INVALID_ARGUMENT', '"rag"', 'tool_use');

    fs.writeFileSync(path.join(dir, 'chat_template.jinja'), 'J:{{ messages[0].content }}');
    expect(openModelDir(dir).applyChatTemplate([{ role: 'user', content: 'y' }])).toBe('J:y');
  });

  it('reports templates that fail to parse or to render, naming the file', () => {
    const dir = copyTinyModel();
    const cfg = path.join(dir, 'tokenizer_config.json');
    editJson(cfg, (c) => {
      c.chat_template = TEMPLATE;
    });
    expectArkvaleError(
      () => openModelDir(dir).applyChatTemplate([{ role: 'robot', content: 'x' }]),
      'INVALID_ARGUMENT',
      cfg,
      'failed to render',
      'unknown role robot',
    );
    editJson(cfg, (c) => {
      c.chat_template = '{% for m in messages %}{{ m.content }';
    });
    expectArkvaleError(() => openModelDir(dir).applyChatTemplate(messages), 'MODEL_FILE', cfg, 'does not parse');
    editJson(cfg, (c) => {
      c.chat_template = 42;
    });
    expectArkvaleError(() => openModelDir(dir), 'MODEL_FILE', cfg, '"chat_template"');
  });
});

describe('describeModel', () => {
  it('describes the bundled model', () => {
    const d = describeModel(openModelDir(TINY_MODEL_DIR).config);
    expect(d.architecture).toBe('LlamaForCausalLM');
    expect(d.dtype).toBe('float16');
    expect(d.rope).toBe('theta 500000, no scaling');
    // 2 x (856 x 512) embeddings + 4 layers x (2 x 512^2 + 2 x 512 x 256 + 3 x 512 x 1536 + 2 x 512) + 512
    expect(d.parameterCount).toBe(2 * 856 * 512 + 4 * (2 * 512 * 512 + 2 * 512 * 256 + 3 * 512 * 1536 + 2 * 512) + 512);
    expect(d.parameterCount).toBe(13_464_064);
    // 2 (K, V) x 4 layers x 2 KV heads x 128 dims x bytes
    // fp8: 2 x 4 layers x 2 KV heads x (128 codes + 1 scale byte)
    expect(d.kvBytesPerToken).toEqual({ f16: 4096, f32: 8192, fp8: 2064 });
    expect(d.pageBytes).toEqual([
      { pageSize: 8, f16: 8192, f32: 16384, fp8: 4128 },
      { pageSize: 16, f16: 16384, f32: 32768, fp8: 8256 },
      { pageSize: 32, f16: 32768, f32: 65536, fp8: 16512 },
      { pageSize: 64, f16: 65536, f32: 131072, fp8: 33024 },
    ]);
  });

  it('counts a tied embedding once and builds a KV geometry', () => {
    const c = { ...openModelDir(TINY_MODEL_DIR).config, tieWordEmbeddings: true };
    expect(countParameters(c)).toBe(13_464_064 - 856 * 512);
    expect(kvGeometry(c, 16, 2)).toStrictEqual({ numLayers: 4, numHeads: 4, numKvHeads: 2, headDim: 128, pageSize: 16, bytesPerElement: 2 });
    expect(kvGeometry(c, 16, 2, 'auto')).toStrictEqual(kvGeometry(c, 16, 2));
    expect(kvGeometry(c, 16, 2, 'fp8')).toStrictEqual({ ...kvGeometry(c, 16, 2), kvDtype: 'fp8' });
    expect(() => kvGeometry(c, 16, 2, 'e5m2' as 'fp8')).toThrow('--kv-dtype must be one of: auto, fp8; got "e5m2"');
    expect(describeModel({ ...c, ropeScaling: { type: 'linear', factor: 4 } }).rope).toBe('theta 500000, linear x4');
  });
});
