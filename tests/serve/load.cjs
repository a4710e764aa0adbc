// Load on bitnet serve built with ASan + UBSan (tests/test_serve.sh checks its log):
//  1. 64 concurrent streaming clients all complete with nothing lost: every stream ends with
//     [DONE], its usage count equals the tokens received, and those tokens decode to the text;
//  2. 16 clients that disconnect mid-stream free their slots (/metrics shows it);
//  3. 1,000 malformed requests, then /health and a correct completion.
//   PORT_B: bitnet serve -m models/shakespeare --parallel 16 --queue 64 --timeout 3
//   BITNET: the server's binary (its `run` gives the reference completion)
'use strict';
const http = require('http');
const { execFileSync } = require('child_process');
const { check, test, finish, json, metrics, until, raw, parseResponse, withTimeout } = require('./lib.cjs');

const B = Number(process.env.PORT_B), BIN = process.env.BITNET;

// A streamed request read as Server-Sent Events. abortAfter: destroy the connection after that many tokens.
// control.abort(), when control is given, closes the connection.
function stream(path, body, { abortAfter = 0, onTokens, control } = {}) {
  return new Promise((resolve) => {
    const data = JSON.stringify(body);
    const out = { events: [], done: false, text: '', tokens: [], n_lp: 0, usage: null, status: 0, error: null };
    const req = http.request({ host: '127.0.0.1', port: B, method: 'POST', path, agent: false,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } }, (res) => {
      let buf = '';
      out.status = res.statusCode;
      res.setEncoding('utf8');
      res.on('data', (d) => {
        buf += d;
        let at;
        while ((at = buf.indexOf('\n\n')) >= 0) {
          const ev = buf.slice(0, at);
          buf = buf.slice(at + 2);
          if (!ev.startsWith('data: ')) continue;
          const payload = ev.slice(6);
          if (payload === '[DONE]') { out.done = true; continue; }
          const chunk = JSON.parse(payload);
          out.events.push(chunk);
          if (chunk.usage) out.usage = chunk.usage;
          for (const c of chunk.choices) {
            out.text += c.delta ? c.delta.content || '' : c.text;
            out.tokens.push(...(c.tokens || []));
            if (c.logprobs) out.n_lp += c.logprobs.content ? c.logprobs.content.length : c.logprobs.tokens.length;
          }
        }
        if (onTokens) onTokens(out.tokens.length);
        if (abortAfter && out.tokens.length >= abortAfter) { req.destroy(); resolve(out); }
      });
      res.on('end', () => resolve(out));
      res.on('error', (e) => { out.error = e; resolve(out); });
    });
    req.on('error', (e) => { out.error = e; resolve(out); });
    if (control) control.abort = () => { req.destroy(); resolve(out); };
    req.end(data);
  });
}

// Deterministic random numbers for the malformed requests (mulberry32).
function rng(seed) {
  return () => {
    seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const VALID = JSON.stringify({ model: 'shakespeare', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4 });
const WRONG_TYPES = [
  { messages: 5 }, { messages: [{ role: 1, content: 'x' }] }, { messages: [{ role: 'user', content: 7 }] },
  { messages: [{ role: 'wizard', content: 'x' }] }, { messages: [] }, { prompt: {} }, { prompt: [[]] }, { prompt: [1.5] },
  { prompt: 'x', max_tokens: '10' }, { prompt: 'x', n: 0 }, { prompt: 'x', n: 1000 }, { prompt: 'x', stop: [1] },
  { prompt: 'x', logit_bias: [1] }, { prompt: 'x', logit_bias: { abc: 1 } }, { prompt: 'x', temperature: -3 },
  { messages: [{ role: 'user', content: 'x' }], logprobs: true, top_logprobs: 50 }, { prompt: 'x', stream_options: 1 },
  { prompt: 'x', seed: 'x' }, { prompt: 'x', stream: 'yes' }, { messages: [{ role: 'user', content: [{ type: 'image_url' }] }] },
  { prompt: 'x', echo: true }, { messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function' }] }, [1, 2, 3], 'just a string',
  { prompt: 'x', top_p: 7 }, { prompt: 'x', presence_penalty: 9 }, { prompt: ['a', 5] }, { prompt: 'x', max_tokens: -4 },
];
const PATHS = ['/v1/chat/completions', '/v1/completions', '/tokenize', '/detokenize', '/v1/models', '/health', '/nope'];

// One malformed request as the bytes to send.
function malformed(r, k) {
  const pick = (a) => a[Math.floor(r() * a.length)];
  const bytes = (n) => Buffer.from(Array.from({ length: n }, () => Math.floor(r() * 256)));
  const post = (path, body, extra = '') =>
    `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n${extra}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n`;
  switch (k % 12) {
    case 0: return bytes(1 + Math.floor(r() * 2048));
    case 1: return Buffer.concat([Buffer.from('POST /v1/chat/completions HTTP/1.1\r\n'), bytes(1 + Math.floor(r() * 512))]);
    case 2: { // truncated body
      const body = VALID.slice(0, Math.floor(r() * VALID.length));
      return `POST /v1/chat/completions HTTP/1.1\r\nContent-Length: ${VALID.length}\r\n\r\n${body}`;
    }
    case 3: return `POST /v1/completions HTTP/1.1\r\nContent-Length: ${pick(['abc', '-1', '1e3', ' 12x', '99999999999999999999', '18446744073709551616', ''])}\r\n\r\n{}`;
    case 4: return `POST /v1/completions HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}`;
    case 5: return `GET /health HTTP/1.1\r\n${pick(['X-A', 'Cookie', 'Authorization'])}: ${'z'.repeat(17000 + Math.floor(r() * 30000))}\r\n\r\n`;
    case 6: { // invalid JSON: cut or a byte changed
      const s = VALID.split('');
      if (r() < 0.5) s.length = Math.floor(r() * s.length);
      else s[Math.floor(r() * s.length)] = pick(['{', '}', '"', ',', ':', '\\', 'x', '\u0001']);
      const body = s.join('');
      return post(pick(PATHS.slice(0, 4)), body) + body;
    }
    case 7: { const body = JSON.stringify(pick(WRONG_TYPES)); return post(pick(PATHS.slice(0, 2)), body) + body; }
    case 8: { // invalid UTF-8 in a string
      const body = Buffer.concat([Buffer.from('{"prompt": "ab'), Buffer.from([pick([0xff, 0xc0, 0xed, 0xf5, 0x80]), 0x41]), Buffer.from('", "max_tokens": 2}')]);
      return Buffer.concat([Buffer.from(post(pick(PATHS.slice(0, 3)), 'x'.repeat(body.length))), body]);
    }
    case 9: return 'POST /tokenize HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n' +
      pick(['zz\r\nabc\r\n0\r\n\r\n', '5\r\nab\r\n', 'ffffffffffffffffff\r\n', '3\r\nabcXY0\r\n\r\n', '0\r\nTrailer: x\r\n', '2;' + 'e'.repeat(3000) + '\r\n']);
    case 10: return pick(['GET  HTTP/1.1\r\n\r\n', 'GET /x HTTP/9.9\r\n\r\n', 'G@T / HTTP/1.1\r\n\r\n', 'GET / HTTP/1.1\r\nBad Header: x\r\n\r\n',
      'GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n', 'GET / HTTP/1.1\r\nX: a\u0000b\r\n\r\n', '\r\n\r\n\r\n', 'GET /' + 'a'.repeat(20000) + ' HTTP/1.1\r\n\r\n',
      'POST /v1/completions HTTP/1.1\r\nExpect: something\r\n\r\n', 'PUT /v1/models HTTP/1.1\r\n\r\n', 'DELETE /health HTTP/1.0\r\n\r\n']);
    default: { // a valid request with random bytes flipped
      const b = Buffer.from(post('/v1/chat/completions', VALID) + VALID);
      for (let i = 0; i < 1 + Math.floor(r() * 4); i++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
      return b;
    }
  }
}

(async () => {
  await test('64 concurrent streams', async () => {
    const jobs = [];
    for (let i = 0; i < 64; i++) {
      const chat = i % 2 === 0;
      const body = { max_tokens: 24 + (i % 5) * 8, temperature: 0.8, seed: i, stream: true, stream_options: { include_usage: true },
        logprobs: chat ? true : 1, return_tokens: true, logit_bias: { 1022: -100 } };
      if (chat) body.messages = [{ role: 'user', content: `Line ${i}, good sir.` }];
      else body.prompt = `ACT ${i}:`;
      jobs.push(stream(chat ? '/v1/chat/completions' : '/v1/completions', body));
    }
    const res = await withTimeout(Promise.all(jobs), 240000, '64 streams');
    const bad = (f) => res.map((r, i) => (f(r, i) ? -1 : i)).filter((i) => i >= 0);
    let b;
    check('64 streams answered 200', (b = bad((r) => r.status === 200 && !r.error)).length === 0, JSON.stringify(b));
    check('every stream ends with [DONE]', (b = bad((r) => r.done)).length === 0, JSON.stringify(b));
    check('usage equals the tokens received', (b = bad((r) => r.usage && r.usage.completion_tokens === r.tokens.length &&
      r.tokens.length > 0)).length === 0, JSON.stringify(b.map((i) => [i, res[i].usage, res[i].tokens.length])));
    check('one logprob per token received', (b = bad((r) => r.n_lp === r.tokens.length)).length === 0, JSON.stringify(b));
    const texts = await Promise.all(res.map((r) => json(B, 'POST', '/detokenize', { tokens: r.tokens })));
    check('the tokens decode to the text received', (b = bad((r, i) => texts[i] && texts[i].json.content === r.text)).length === 0,
      JSON.stringify(b.slice(0, 3).map((i) => [res[i].text, texts[i].json.content])));
  });

  await test('16 disconnects free their slots', async () => {
    const counts = new Array(16).fill(0), controls = [], streams = [];
    for (let i = 0; i < 16; i++) {
      controls.push({});
      streams.push(stream('/v1/completions', { prompt: `EXIT ${i}:`, max_tokens: 230, ignore_eos: true, temperature: 1, seed: i,
        stream: true, return_tokens: true }, { control: controls[i], onTokens: (n) => { counts[i] = n; } }));
    }
    await until(() => counts.every((n) => n >= 2), 60000);
    const during = await metrics(B);
    check('16 slots in use while they stream', during.bitnet_requests_active === 16, during.bitnet_requests_active);
    controls.forEach((c) => c.abort()); // each client goes away mid-stream
    await Promise.all(streams);
    const t0 = Date.now();
    const after = await until(async () => { const m = await metrics(B); return m.bitnet_requests_active === 0 ? m : null; }, 10000);
    check('/metrics: the slots are free again', after && after.bitnet_requests_active === 0 && after.bitnet_requests_queued === 0,
      `${Date.now() - t0} ms`);
    const generated = after ? after.bitnet_generated_tokens_total - during.bitnet_generated_tokens_total : -1;
    check('... well before the streams would have ended', generated >= 0 && generated < 16 * 230 - 16 * 100,
      `${generated} tokens generated after the disconnects`);
  });

  await test('1,000 malformed requests', async () => {
    const r = rng(20240601);
    const tally = {};
    let hung = 0, server5xx = 0, next = 0;
    const worker = async () => {
      while (next < 1000) {
        const k = next++;
        const res = await raw(B, malformed(r, k), { timeoutMs: 10000, end: k % 3 !== 0 });
        const p = parseResponse(res.data);
        const key = p ? p.status : res.closed ? 'closed' : 'hung';
        tally[key] = (tally[key] || 0) + 1;
        if (!res.closed) hung++;
        if (p && p.status >= 500 && p.status !== 501 && p.status !== 503 && p.status !== 505) server5xx++;
      }
    };
    await withTimeout(Promise.all(Array.from({ length: 16 }, worker)), 240000, 'malformed requests');
    console.log('  answers: ' + JSON.stringify(tally));
    check('every malformed request was answered or closed', hung === 0, JSON.stringify(tally));
    check('no server error among the answers', server5xx === 0, JSON.stringify(tally));
    check('mostly 4xx answers', Object.entries(tally).filter(([k]) => k >= 400 && k < 500).reduce((a, [, v]) => a + v, 0) > 500, JSON.stringify(tally));
  });

  await test('afterwards: /health and a correct completion', async () => {
    const h = await json(B, 'GET', '/health');
    check('/health', h.status === 200 && h.json.status === 'ok');
    const want = execFileSync(BIN, ['run', '-m', 'models/shakespeare', '-p', 'ROMEO:', '--temp', '0', '-n', '30'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 120000 }).replace(/\n$/, '');
    const c = await json(B, 'POST', '/v1/completions', { prompt: 'ROMEO:', max_tokens: 30, temperature: 0 });
    check('a correct completion', c.status === 200 && c.json.choices[0].text === want, JSON.stringify([c.json && c.json.choices[0].text, want]));
    const m = await metrics(B);
    check('metrics count the 400s and no 500', m['bitnet_requests_total{status="400"}'] > 100 && !m['bitnet_requests_total{status="500"}']);
    check('KV cells add up', m.bitnet_kv_cells_used + m.bitnet_kv_cells_free === 16 * 256);
  });

  finish('serve_load');
})();
