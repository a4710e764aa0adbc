// The official `openai` npm package against bitnet serve, unchanged: chat and completions,
// whole and streamed, stop, max_tokens, seed, n, logprobs, the models list, and each error
// status through the client's own error classes.
//   PORT_A: a server on models/shakespeare (context 256, --parallel 16, no key)
//   PORT_C: the same model with --api-key sekret --parallel 1 --queue 0 --max-body 65536
'use strict';
const OpenAI = require('openai');
const { check, test, finish, json, request, raw, parseResponse, withTimeout } = require('./lib.cjs');

const A = Number(process.env.PORT_A), C = Number(process.env.PORT_C);
const client = new OpenAI({ baseURL: `http://127.0.0.1:${A}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 60000 });
const keyed = new OpenAI({ baseURL: `http://127.0.0.1:${C}/v1`, apiKey: 'sekret', maxRetries: 0, timeout: 60000 });
const T = 60000;

async function errorOf(promise) {
  try { await withTimeout(Promise.resolve(promise), T, 'request'); } catch (e) { return e; }
  return null;
}

async function collect(stream) {
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  return chunks;
}

(async () => {
  await test('models list', async () => {
    const models = await client.models.list();
    check('models.list() has the model', models.data.length === 1 && models.data[0].id === 'shakespeare' &&
      models.data[0].object === 'model', JSON.stringify(models.data));
    const m = await client.models.retrieve('shakespeare');
    check('models.retrieve', m.id === 'shakespeare');
  });

  let greedy = null;
  await test('completions, whole', async () => {
    const r = await client.completions.create({ model: 'shakespeare', prompt: 'ROMEO:', max_tokens: 24, temperature: 0 });
    greedy = r.choices[0].text;
    check('completion text', typeof greedy === 'string' && greedy.length > 0, JSON.stringify(r));
    check('completion object', r.object === 'text_completion' && r.id.startsWith('cmpl-') && r.model === 'shakespeare');
    check('max_tokens: finish_reason length and 24 tokens',
      r.choices[0].finish_reason === 'length' && r.usage.completion_tokens === 24, JSON.stringify(r.usage));
    check('usage counts the prompt', r.usage.prompt_tokens > 0 && r.usage.total_tokens === r.usage.prompt_tokens + 24);
  });

  await test('completions, streamed', async () => {
    const stream = await client.completions.create({ model: 'shakespeare', prompt: 'ROMEO:', max_tokens: 24, temperature: 0,
      stream: true, stream_options: { include_usage: true } });
    const chunks = await collect(stream);
    const text = chunks.map((c) => (c.choices[0] ? c.choices[0].text : '')).join('');
    check('streamed text equals the whole answer', text === greedy, JSON.stringify([text, greedy]));
    const last = chunks[chunks.length - 1];
    check('usage chunk last', last.choices.length === 0 && last.usage.completion_tokens === 24, JSON.stringify(last));
    check('finish_reason in the stream', chunks.some((c) => c.choices[0] && c.choices[0].finish_reason === 'length'));
  });

  await test('stop', async () => {
    // the reference: the greedy text without stop strings; cut before the first occurrence of a word in its middle
    const words = greedy.split(/\s+/).filter((w) => w.length >= 3);
    const stop = words[Math.floor(words.length / 2)];
    const want = greedy.slice(0, greedy.indexOf(stop));
    const r = await client.completions.create({ model: 'shakespeare', prompt: 'ROMEO:', max_tokens: 24, temperature: 0, stop: [stop, 'zzzz'] });
    check('stop: text up to the stop string', r.choices[0].text === want, JSON.stringify([r.choices[0].text, want, stop]));
    check('stop: finish_reason stop', r.choices[0].finish_reason === 'stop');
    const s = await client.completions.create({ model: 'shakespeare', prompt: 'ROMEO:', max_tokens: 24, temperature: 0, stop, stream: true });
    const text = (await collect(s)).map((c) => (c.choices[0] ? c.choices[0].text : '')).join('');
    check('stop while streaming: nothing of the stop string leaks', text === want, JSON.stringify([text, want]));
  });

  await test('chat, whole and streamed', async () => {
    const messages = [{ role: 'system', content: 'You are a player.' }, { role: 'user', content: 'Speak, Juliet.' }];
    const r = await client.chat.completions.create({ model: 'shakespeare', messages, max_tokens: 20, temperature: 0 });
    const msg = r.choices[0].message;
    check('chat object', r.object === 'chat.completion' && r.id.startsWith('chatcmpl-'));
    check('chat message', msg.role === 'assistant' && typeof msg.content === 'string' && msg.content.length > 0, JSON.stringify(r));
    check('chat usage', r.usage.completion_tokens > 0 && r.usage.completion_tokens <= 20 && r.usage.prompt_tokens > 5);
    const stream = await client.chat.completions.create({ model: 'shakespeare', messages, max_tokens: 20, temperature: 0,
      stream: true, stream_options: { include_usage: true } });
    const chunks = await collect(stream);
    const text = chunks.map((c) => (c.choices[0] && c.choices[0].delta.content) || '').join('');
    check('chat stream: role first', chunks[0].choices[0].delta.role === 'assistant');
    check('chat stream: same text as whole', text === msg.content, JSON.stringify([text, msg.content]));
    check('chat stream: object and usage', chunks.every((c) => c.object === 'chat.completion.chunk') &&
      chunks[chunks.length - 1].usage.completion_tokens === r.usage.completion_tokens);
    // content given as an array of text parts is the same conversation
    const parts = [{ role: 'system', content: [{ type: 'text', text: 'You are ' }, { type: 'text', text: 'a player.' }] }, messages[1]];
    const r2 = await client.chat.completions.create({ model: 'shakespeare', messages: parts, max_tokens: 20, temperature: 0 });
    check('chat: text parts', r2.choices[0].message.content === msg.content);
  });

  await test('seed', async () => {
    const ask = () => client.chat.completions.create({ model: 'shakespeare', max_tokens: 30, temperature: 1.0, seed: 1234,
      messages: [{ role: 'user', content: 'Tell me of Verona.' }] });
    const a = await ask(), b = await ask();
    check('same seed, same text', a.choices[0].message.content === b.choices[0].message.content,
      JSON.stringify([a.choices[0].message.content, b.choices[0].message.content]));
    const c = await client.chat.completions.create({ model: 'shakespeare', max_tokens: 30, temperature: 1.0, seed: 99,
      messages: [{ role: 'user', content: 'Tell me of Verona.' }] });
    check('another seed, another text', c.choices[0].message.content !== a.choices[0].message.content);
  });

  await test('n = 2', async () => {
    const r = await client.chat.completions.create({ model: 'shakespeare', max_tokens: 30, temperature: 1.0, n: 2, seed: 7,
      messages: [{ role: 'user', content: 'Sing.' }] });
    check('two choices, indexed', r.choices.length === 2 && r.choices[0].index === 0 && r.choices[1].index === 1);
    check('the choices differ', r.choices[0].message.content !== r.choices[1].message.content);
    check('usage sums both', r.usage.completion_tokens > 30 && r.usage.completion_tokens <= 60, JSON.stringify(r.usage));
    const s = await client.chat.completions.create({ model: 'shakespeare', max_tokens: 10, temperature: 1.0, n: 2, seed: 7,
      messages: [{ role: 'user', content: 'Sing.' }], stream: true });
    const chunks = await collect(s);
    const byIndex = [0, 1].map((i) => chunks.filter((c) => c.choices[0] && c.choices[0].index === i)
      .map((c) => c.choices[0].delta.content || '').join(''));
    check('n = 2 streamed: both choices arrive', byIndex[0].length > 0 && byIndex[1].length > 0, JSON.stringify(byIndex));
  });

  await test('logprobs', async () => {
    const r = await client.chat.completions.create({ model: 'shakespeare', max_tokens: 12, temperature: 0, logprobs: true,
      top_logprobs: 3, messages: [{ role: 'user', content: 'Hark!' }] });
    const lp = r.choices[0].logprobs.content;
    check('one entry per token', lp.length === r.usage.completion_tokens, `${lp.length} vs ${r.usage.completion_tokens}`);
    check('tokens spell the text', lp.map((t) => t.token).join('') === r.choices[0].message.content);
    check('entries well formed', lp.every((t) => t.logprob <= 0 && Array.isArray(t.bytes) && t.top_logprobs.length === 3 &&
      t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob && t.top_logprobs[1].logprob >= t.top_logprobs[2].logprob));
    // greedy: the chosen token is the most likely one, and the probabilities are a distribution's
    check('greedy picks the top token', lp.every((t) => t.token === t.top_logprobs[0].token &&
      Math.abs(t.logprob - t.top_logprobs[0].logprob) < 1e-6));
    check('probabilities sum to at most 1', lp.every((t) => t.top_logprobs.reduce((a, x) => a + Math.exp(x.logprob), 0) <= 1 + 1e-5));
    const c = await client.completions.create({ model: 'shakespeare', prompt: 'ROMEO:', max_tokens: 8, temperature: 0, logprobs: 2 });
    const l = c.choices[0].logprobs;
    check('completions logprobs', l.tokens.length === 8 && l.token_logprobs.length === 8 && l.top_logprobs.length === 8 &&
      Object.keys(l.top_logprobs[0]).length >= 1 && l.text_offset[0] === 0 && l.tokens.join('') === c.choices[0].text,
      JSON.stringify(l));
  });

  // ---- errors, through the client's classes
  await test('400 wrong type', async () => {
    const e = await errorOf(client.chat.completions.create({ model: 'shakespeare', messages: [{ role: 'user', content: 'hi' }], temperature: 'hot' }));
    check('400 BadRequestError', e instanceof OpenAI.BadRequestError && e.status === 400, String(e));
    check('400 names the field', e && e.param === 'temperature' && e.type === 'invalid_request_error' && e.code === 'invalid_type');
    const m = await errorOf(client.chat.completions.create({ model: 'shakespeare', messages: 'hi' }));
    check('400 messages not an array', m instanceof OpenAI.BadRequestError && m.param === 'messages');
    const n = await errorOf(client.completions.create({ model: 'shakespeare', prompt: [1, 2, 99999] }));
    check('400 token id out of range', n instanceof OpenAI.BadRequestError && /vocabulary/.test(n.message));
  });

  await test('400 prompt longer than the context', async () => {
    const prompt = 'ROMEO: ' + 'and '.repeat(400);
    const e = await errorOf(client.completions.create({ model: 'shakespeare', prompt, max_tokens: 4 }));
    const tok = await json(A, 'POST', '/tokenize', { content: prompt });
    const n = tok.json.tokens.length;
    check('400 BadRequestError', e instanceof OpenAI.BadRequestError && e.code === 'context_length_exceeded', String(e));
    check('the message names both lengths', e && e.message.includes('256') && e.message.includes(String(n)), e && e.message);
  });

  await test('401', async () => {
    const wrong = new OpenAI({ baseURL: `http://127.0.0.1:${C}/v1`, apiKey: 'wrong', maxRetries: 0 });
    const e = await errorOf(wrong.models.list());
    check('401 AuthenticationError', e instanceof OpenAI.AuthenticationError && e.status === 401, String(e));
    const ok = await keyed.models.list();
    check('the right key works', ok.data[0].id === 'shakespeare');
    const h = await request(C, 'GET', '/health');
    check('/health needs no key', h.status === 200);
  });

  await test('404', async () => {
    const e = await errorOf(client.get('/no/such/path'));
    check('404 NotFoundError', e instanceof OpenAI.NotFoundError && e.status === 404, String(e));
    const m = await errorOf(client.models.retrieve('gpt-9'));
    check('404 unknown model', m instanceof OpenAI.NotFoundError);
  });

  await test('405', async () => {
    const e = await errorOf(client.get('/chat/completions'));
    check('405 APIError', e instanceof OpenAI.APIError && e.status === 405, String(e));
    check('405 Allow header', e && e.headers && e.headers.get('allow') === 'POST');
  });

  await test('413', async () => {
    const e = await errorOf(keyed.completions.create({ model: 'shakespeare', prompt: 'x'.repeat(100000) }));
    check('413 APIError', e instanceof OpenAI.APIError && e.status === 413, String(e));
  });

  await test('503 with Retry-After', async () => {
    // --parallel 1 --queue 0: one long stream holds the only slot
    const hold = await keyed.completions.create({ model: 'shakespeare', prompt: 'KING:', max_tokens: 200, temperature: 1, stream: true });
    const it = hold[Symbol.asyncIterator]();
    await it.next();
    const e = await errorOf(keyed.completions.create({ model: 'shakespeare', prompt: 'QUEEN:', max_tokens: 4 }));
    check('503 InternalServerError', e instanceof OpenAI.InternalServerError && e.status === 503, String(e));
    check('Retry-After', e && e.headers && e.headers.get('retry-after') === '1');
    hold.controller.abort();
  });

  await test('raw: malformed bodies and invalid UTF-8', async () => {
    const bad = await json(A, 'POST', '/v1/chat/completions', '{"messages": [');
    check('400 invalid JSON', bad.status === 400 && bad.json.error.code === 'invalid_json' && bad.json.error.type === 'invalid_request_error', bad.body);
    const utf = await request(A, 'POST', '/v1/completions', { body: Buffer.from('{"prompt": "caf\xe9"}', 'latin1') });
    check('400 invalid UTF-8', utf.status === 400 && JSON.parse(utf.body).error.code === 'invalid_encoding', utf.body);
    const shape = JSON.parse(utf.body).error;
    check('OpenAI error shape', ['message', 'type', 'param', 'code'].every((k) => k in shape));
  });

  await test('raw: limits and timeouts', async () => {
    const huge = await raw(C, 'GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ' + 'a'.repeat(20000) + '\r\n\r\n');
    const p = parseResponse(huge.data);
    check('431 headers too large, then closed', p && p.status === 431 && huge.closed, huge.data.toString().slice(0, 80));
    const slow = await raw(C, ['GET /health HTTP/1.1\r\n', 'Host: x\r\n'], { timeoutMs: 8000, pauseMs: 100 });
    check('a client too slow is closed after --timeout', slow.closed && slow.ms >= 1500 && slow.ms < 7000, `${slow.ms} ms`);
    const s = parseResponse(slow.data);
    check('... with a 408', s && s.status === 408);
    const v = await raw(A, 'GET /health HTTP/2.0\r\n\r\n');
    check('505 for HTTP/2 as text', parseResponse(v.data).status === 505);
    const te = await raw(A, 'POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n');
    check('501 unknown transfer coding', parseResponse(te.data).status === 501);
    const both = await raw(A, 'POST /v1/completions HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n');
    check('400 Content-Length with chunked', parseResponse(both.data).status === 400);
  });

  await test('raw: keep-alive, pipelining, chunked bodies, HEAD, CORS', async () => {
    const body = '{"content": "ROMEO:"}';
    const two = await raw(A, `POST /tokenize HTTP/1.1\r\nContent-Length: ${body.length}\r\n\r\n${body}` +
      `GET /health HTTP/1.1\r\nConnection: close\r\n\r\n`, { timeoutMs: 5000 });
    const text = two.data.toString();
    check('two pipelined requests answered in order', /^HTTP\/1\.1 200[\s\S]*"tokens"[\s\S]*HTTP\/1\.1 200[\s\S]*"status":"ok"/.test(text) && two.closed, text.slice(0, 300));
    const chunked = await raw(A, 'POST /tokenize HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n' +
      '5\r\n{"con\r\n10;ext=1\r\ntent": "ROMEO:"\r\n1\r\n}\r\n0\r\n\r\n');
    const cp = parseResponse(chunked.data);
    const direct = await json(A, 'POST', '/tokenize', { content: 'ROMEO:' });
    check('a chunked body decodes', cp && cp.status === 200 && JSON.parse(cp.body).tokens.join() === direct.json.tokens.join(), chunked.data.toString());
    const head = await raw(A, 'HEAD /health HTTP/1.1\r\nConnection: close\r\n\r\n');
    const hp = parseResponse(head.data);
    check('HEAD: headers only', hp && hp.status === 200 && hp.body === '' && Number(hp.headers['content-length']) > 0);
    const opt = await request(A, 'OPTIONS', '/v1/chat/completions', { headers: { Origin: 'http://example', 'Access-Control-Request-Method': 'POST' } });
    check('CORS preflight', opt.status === 204 && opt.headers['access-control-allow-origin'] === '*' &&
      /POST/.test(opt.headers['access-control-allow-methods']));
    const cont = await raw(A, 'POST /tokenize HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 21\r\nConnection: close\r\n\r\n', { timeoutMs: 1000 });
    check('Expect: 100-continue answered', cont.data.toString().startsWith('HTTP/1.1 100 Continue\r\n\r\n'), cont.data.toString().slice(0, 40));
  });

  await test('tokenize / detokenize', async () => {
    const t = await json(A, 'POST', '/tokenize', { content: 'O Romeo, Romeo!' });
    check('tokenize', t.status === 200 && Array.isArray(t.json.tokens) && t.json.tokens.length > 2);
    const d = await json(A, 'POST', '/detokenize', { tokens: t.json.tokens });
    check('detokenize round trip', d.status === 200 && d.json.content === 'O Romeo, Romeo!', d.body);
  });

  finish('serve_openai');
})();
