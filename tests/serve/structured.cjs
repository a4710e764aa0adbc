// Structured output through the official `openai` npm package, unchanged: response_format
// {"type": "json_object"} and {"type": "json_schema", "json_schema": {...}} on chat and
// completions, whole and streamed, n > 1, several seeds and temperatures. Every finished answer
// must be JSON (JSON.parse) and, under a schema, valid against it by the validator below,
// written here from the JSON Schema specification (draft 2020-12) for the keywords used; an
// answer cut by max_tokens must be the start of a JSON text. A keyword outside the supported
// subset is a 400 BadRequestError naming it (param response_format).
//   PORT_A: a server on models/shakespeare (context 256, no key)
'use strict';
const OpenAI = require('openai');
const { check, test, finish, withTimeout } = require('./lib.cjs');

const A = Number(process.env.PORT_A);
const client = new OpenAI({ baseURL: `http://127.0.0.1:${A}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 120000 });
const T = 120000;

// Schemas small enough for models/shakespeare's 256-token context (the grammar lets JSON take
// whitespace, which this model likes), together covering the supported keywords the issue lists.
const NPC = { // an object: string bounds, enum, boolean, required, additionalProperties
  type: 'object',
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 8 },
    mood: { enum: ['happy', 'sad', 'angry'] },
    alive: { type: 'boolean' },
  },
  required: ['name', 'mood', 'alive'],
  additionalProperties: false,
};
const BAG = { // an array at the top: items through $ref, minItems/maxItems, pattern, integer
  type: 'array',
  items: { $ref: '#/$defs/item' },
  minItems: 1,
  maxItems: 2,
  $defs: {
    item: {
      type: 'object',
      properties: { id: { type: 'string', pattern: '^[a-z]{2,4}$' }, n: { type: 'integer' } },
      required: ['id', 'n'],
      additionalProperties: false,
    },
  },
};
const QUEST = { // const, anyOf with null, number, an optional property
  type: 'object',
  properties: {
    kind: { const: 'quest' },
    goal: { anyOf: [{ type: 'null' }, { type: 'string', maxLength: 6 }] },
    reward: { type: 'number' },
  },
  required: ['kind', 'goal'],
  additionalProperties: false,
};
const SCHEMAS = { npc: NPC, bag: BAG, quest: QUEST };

// ---- an independent validator: the keywords NPC uses, as the specification defines them ----

function typeOf(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v; // object, string, boolean
}

function hasType(v, t) {
  const got = typeOf(v);
  return got === t || (t === 'number' && got === 'integer');
}

function equalJSON(a, b) { return JSON.stringify(a) === JSON.stringify(b); }

// Errors of value v against schema s (root: for $ref); [] when valid.
function validate(s, v, root, path = '$') {
  const errs = [];
  const fail = (m) => errs.push(`${path}: ${m}`);
  if (s.$ref !== undefined) {
    const m = /^#\/\$defs\/(.+)$/.exec(s.$ref);
    if (!m || !root.$defs || !root.$defs[m[1]]) return [`${path}: $ref ${s.$ref} points to nothing`];
    errs.push(...validate(root.$defs[m[1]], v, root, path));
  }
  if (s.type !== undefined && ![].concat(s.type).some((t) => hasType(v, t))) fail(`type ${typeOf(v)}, not ${s.type}`);
  if (s.enum !== undefined && !s.enum.some((e) => equalJSON(e, v))) fail(`${JSON.stringify(v)} not in enum`);
  if (s.const !== undefined && !equalJSON(s.const, v)) fail(`${JSON.stringify(v)} is not the const`);
  if (s.anyOf !== undefined && !s.anyOf.some((sub) => validate(sub, v, root, path).length === 0)) fail('no anyOf branch fits');
  if (typeOf(v) === 'string') {
    const n = [...v].length; // code points, as the specification counts
    if (s.minLength !== undefined && n < s.minLength) fail(`length ${n} < ${s.minLength}`);
    if (s.maxLength !== undefined && n > s.maxLength) fail(`length ${n} > ${s.maxLength}`);
    if (s.pattern !== undefined && !new RegExp(s.pattern, 'u').test(v)) fail(`${JSON.stringify(v)} does not match ${s.pattern}`);
  }
  if (typeOf(v) === 'array') {
    if (s.minItems !== undefined && v.length < s.minItems) fail(`${v.length} items < ${s.minItems}`);
    if (s.maxItems !== undefined && v.length > s.maxItems) fail(`${v.length} items > ${s.maxItems}`);
    if (s.items !== undefined) v.forEach((x, i) => errs.push(...validate(s.items, x, root, `${path}[${i}]`)));
  }
  if (typeOf(v) === 'object') {
    for (const k of s.required || []) if (!(k in v)) fail(`required ${k} missing`);
    for (const [k, x] of Object.entries(v)) {
      if (s.properties && k in s.properties) errs.push(...validate(s.properties[k], x, root, `${path}.${k}`));
      else if (s.additionalProperties === false) fail(`property ${k} not allowed`);
    }
  }
  return errs;
}

// Whether t can be the start of some JSON text (for answers cut by max_tokens): a scan of
// strings, escapes, brackets and the characters allowed outside strings.
function jsonPrefixOk(t) {
  const stack = [];
  let inStr = false, esc = 0, hex = 0;
  for (const c of t) {
    if (inStr) {
      if (hex) { if (!/[0-9a-fA-F]/.test(c)) return false; hex--; }
      else if (esc) { esc = 0; if (c === 'u') hex = 4; else if (!'"\\/bfnrt'.includes(c)) return false; }
      else if (c === '\\') esc = 1;
      else if (c === '"') inStr = false;
      else if (c.codePointAt(0) < 0x20) return false;
    } else if (c === '"') inStr = true;
    else if (c === '{' || c === '[') stack.push(c);
    else if (c === '}' || c === ']') { if (stack.pop() !== (c === '}' ? '{' : '[')) return false; }
    else if (!' \t\n\r,:-+.eE0123456789truefalsn'.includes(c)) return false;
  }
  return true;
}

// The outcome of one answer: 'valid', 'cut' (a JSON start, cut by max_tokens), or an error text.
function judge(content, finishReason, schema) {
  if (finishReason === 'length') return jsonPrefixOk(content) ? 'cut' : `cut, and not the start of JSON: ${JSON.stringify(content)}`;
  if (finishReason !== 'stop') return `finish_reason ${finishReason}`;
  let v;
  try { v = JSON.parse(content); } catch (e) { return `JSON.parse: ${e.message}: ${JSON.stringify(content)}`; }
  if (!schema && typeOf(v) !== 'object') return `not an object: ${JSON.stringify(content)}`;
  if (schema) {
    const errs = validate(schema, v, schema);
    if (errs.length) return `${errs.join('; ')}: ${content}`;
  }
  return 'valid';
}

const format = (name) => ({ type: 'json_schema', json_schema: { name, schema: SCHEMAS[name], strict: true } });
const schemaFormat = format('npc');
const RUNS = [[0, 1], [0.7, 1], [0.7, 2], [1.0, 3], [1.0, 4], [1.3, 5]]; // [temperature, seed]

async function collect(stream) {
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  return chunks;
}

// Tallies outcomes of one group of answers into a check: none invalid, at least one complete
// (an answer may run into max_tokens: a JSON object's strings are unbounded, and this model
// spends many tokens on the whitespace JSON allows).
function tally(name, outcomes) {
  const bad = outcomes.filter((o) => o !== 'valid' && o !== 'cut');
  const valid = outcomes.filter((o) => o === 'valid').length;
  check(`${name}: ${valid} of ${outcomes.length} complete and valid, the rest JSON cut by max_tokens`,
    bad.length === 0 && valid >= 1, bad.slice(0, 3).join(' | ') || `${valid} valid`);
}

(async () => {
  await test('json_object, chat', async () => {
    const out = await withTimeout(Promise.all(RUNS.map(([temperature, seed]) => client.chat.completions.create({
      model: 'shakespeare', messages: [{ role: 'user', content: 'Describe a knight as JSON.' }],
      response_format: { type: 'json_object' }, max_tokens: 200, temperature, seed,
    }))), T, 'json_object');
    tally('json_object chat', out.map((r) => judge(r.choices[0].message.content, r.choices[0].finish_reason, null)));
  });

  for (const name of Object.keys(SCHEMAS)) {
    await test(`json_schema ${name}, chat`, async () => {
      const ask = ([temperature, seed]) => client.chat.completions.create({
        model: 'shakespeare', messages: [{ role: 'user', content: `A ${name}, please.` }],
        response_format: format(name), max_tokens: 200, temperature, seed,
      });
      const out = await withTimeout(Promise.all(RUNS.map(ask)), T, 'json_schema');
      tally(`json_schema ${name} chat`, out.map((r) => judge(r.choices[0].message.content, r.choices[0].finish_reason, SCHEMAS[name])));
      const again = await ask(RUNS[3]);
      check(`json_schema ${name}: the same seed gives the same answer`,
        again.choices[0].message.content === out[3].choices[0].message.content);
    });
  }

  await test('json_schema, chat, parse()', async () => {
    // the client's own helper parses the content of a json_schema answer
    const r = await withTimeout(client.chat.completions.parse({
      model: 'shakespeare', messages: [{ role: 'user', content: 'An NPC, please.' }],
      response_format: schemaFormat, max_tokens: 200, temperature: 0,
    }), T, 'parse');
    const m = r.choices[0].message;
    check('parse(): greedy answer parsed by the client and valid', r.choices[0].finish_reason === 'stop' &&
      m.parsed && validate(NPC, m.parsed, NPC).length === 0, JSON.stringify([r.choices[0].finish_reason, m.content]));
  });

  await test('json_schema, completions, streamed', async () => {
    const outcomes = [];
    for (const [temperature, seed] of RUNS.slice(1, 4)) {
      const chunks = await withTimeout(collect(await client.completions.create({
        model: 'shakespeare', prompt: 'ROMEO:', response_format: format('quest'), max_tokens: 220, temperature, seed, stream: true,
      })), T, 'stream');
      const text = chunks.map((c) => (c.choices[0] ? c.choices[0].text : '')).join('');
      const fin = chunks.map((c) => c.choices[0] && c.choices[0].finish_reason).filter(Boolean);
      outcomes.push(judge(text, fin[0], QUEST));
      const whole = await client.completions.create({
        model: 'shakespeare', prompt: 'ROMEO:', response_format: format('quest'), max_tokens: 220, temperature, seed,
      });
      check(`streamed = whole (t=${temperature} seed=${seed})`, whole.choices[0].text === text, JSON.stringify([whole.choices[0].text, text]));
    }
    tally('json_schema quest completions streamed', outcomes);
  });

  await test('n = 3: each choice its own grammar state', async () => {
    const r = await withTimeout(client.chat.completions.create({
      model: 'shakespeare', messages: [{ role: 'user', content: 'Three NPCs.' }],
      response_format: format('quest'), max_tokens: 200, temperature: 1.0, seed: 11, n: 3,
    }), T, 'n=3');
    check('n = 3: three choices', r.choices.length === 3);
    tally('json_schema quest n=3', r.choices.map((c) => judge(c.message.content, c.finish_reason, QUEST)));
    const s = await withTimeout(collect(await client.chat.completions.create({
      model: 'shakespeare', messages: [{ role: 'user', content: 'Three objects.' }],
      response_format: { type: 'json_object' }, max_tokens: 200, temperature: 0.8, seed: 12, n: 3, stream: true,
    })), T, 'n=3 stream');
    const text = ['', '', ''], fin = [];
    for (const c of s) for (const ch of c.choices) {
      text[ch.index] += ch.delta.content || '';
      if (ch.finish_reason) fin[ch.index] = ch.finish_reason;
    }
    tally('json_object n=3 streamed', text.map((t, i) => judge(t, fin[i], null)));
  });

  await test('unsupported keyword: 400 naming it', async () => {
    let e = null;
    try {
      await client.chat.completions.create({
        model: 'shakespeare', messages: [{ role: 'user', content: 'x' }], max_tokens: 4,
        response_format: { type: 'json_schema', json_schema: { name: 'n', schema: {
          type: 'object', properties: { a: { type: 'integer', minimum: 3 } } } } },
      });
    } catch (err) { e = err; }
    check('400 BadRequestError', e instanceof OpenAI.BadRequestError && e.status === 400, String(e));
    check('names the keyword and response_format', e && e.param === 'response_format' && e.type === 'invalid_request_error' &&
      /minimum/.test(e.message) && /properties\/a/.test(e.message), e && JSON.stringify([e.param, e.message]));
    let f = null;
    try {
      await client.completions.create({ model: 'shakespeare', prompt: 'x', max_tokens: 4,
        response_format: { type: 'json_schema', json_schema: { name: 'n', schema: { type: 'string', format: 'email' } } } });
    } catch (err) { f = err; }
    check('completions: 400 naming format email', f instanceof OpenAI.BadRequestError && f.param === 'response_format' &&
      /email/.test(f.message), f && f.message);
  });

  // the validator itself must be able to fail
  check('validator refuses wrong values', validate(NPC, { name: '', mood: 'bored', alive: 1, extra: 1 }, NPC).length === 4 &&
    validate(NPC, { name: 'Tybalt the bold', mood: 'sad' }, NPC).length === 2 &&
    validate(BAG, [], BAG).length === 1 && validate(BAG, [{ id: 'ABC', n: 1.5 }, { id: 'ab' }, { id: 'ab', n: 1 }], BAG).length === 4 &&
    validate(QUEST, { kind: 'quests', goal: 'slay a dragon', reward: '9' }, QUEST).length === 3 &&
    validate(QUEST, { goal: 5 }, QUEST).length === 2 && validate(NPC, [1], NPC).length === 1);
  check('validator accepts right values', validate(NPC, { name: 'Tybalt', mood: 'angry', alive: true }, NPC).length === 0 &&
    validate(BAG, [{ id: 'sw', n: -3 }], BAG).length === 0 && validate(QUEST, { kind: 'quest', goal: null, reward: 2.5 }, QUEST).length === 0 &&
    validate(QUEST, { kind: 'quest', goal: 'é' }, QUEST).length === 0);
  finish('serve_structured');
})();
