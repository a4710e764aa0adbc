// Greedy output through the server equals `bitnet run --temp 0` on the same prompt, token for
// token: alone, and while 15 other streams run (sampling, in the same batched steps); a second turn
// that repeats the first turn and its reply reuses the cached positions and still equals `bitnet run`.
//   PORT_A: bitnet serve -m models/shakespeare --parallel 24 (context 256)
//   BITNET: the binary the server runs, whose `run` command is the reference
'use strict';
const fs = require('fs');
const http = require('http');
const { execFileSync } = require('child_process');
const { check, test, finish, json, metrics, until, withTimeout } = require('./lib.cjs');

const A = Number(process.env.PORT_A), BIN = process.env.BITNET, MODEL = 'models/shakespeare';
const N = 40;

// `bitnet run` prints the continuation and one newline.
function run(args) {
  const out = execFileSync(BIN, ['run', '-m', MODEL, '--temp', '0', '-n', String(N), ...args],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 60000 });
  return out.endsWith('\n') ? out.slice(0, -1) : out;
}

const tiny = fs.readFileSync('data/tinyshakespeare.txt', 'utf8');
const PROMPTS = [
  'ROMEO:',
  'JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?',
  tiny.slice(0, 560),      // about 150 tokens: prefilled in two chunks of at most 128 while others decode
  'Caf\u00e9 \u2014 na\u00efve r\u00f4le:',
];

// A streaming completion that samples 240 tokens. progress[i] counts the tokens it received;
// resolves when it ends, with the time it ended.
function background(i, progress) {
  let req;
  const done = new Promise((resolve, reject) => {
    const body = JSON.stringify({ prompt: `SCENE ${i}:`, max_tokens: 240, temperature: 1.0, seed: 100 + i, stream: true,
      ignore_eos: true, return_tokens: true });
    req = http.request({ host: '127.0.0.1', port: A, method: 'POST', path: '/v1/completions', agent: false,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } }, (res) => {
      let all = '';
      res.on('data', (d) => {
        all += d;
        progress[i] = (all.match(/"tokens":\[[^\]]*\]/g) || []).reduce((n, t) => n + JSON.parse(t.slice(9)).length, 0);
      });
      res.on('end', () => resolve({ end: Date.now(), done: all.includes('data: [DONE]') }));
      res.on('error', reject);
    });
    req.on('error', (e) => resolve({ end: 0, done: false, error: e }));
    req.end(body);
  });
  return { done, abort: () => req.destroy() };
}

async function greedy(prompt) {
  const r = await json(A, 'POST', '/v1/completions', { prompt, max_tokens: N, temperature: 0, return_tokens: true });
  if (r.status !== 200) throw new Error(r.body);
  return r.json.choices[0];
}

(async () => {
  const refs = [];
  await test('references from bitnet run', async () => {
    for (const p of PROMPTS) {
      const ids = (await json(A, 'POST', '/tokenize', { content: p, add_special: true })).json.tokens;
      refs.push({ prompt: p, ids, text: run(['-p', p]), out: run(['--ids', ids.join(',')]).trim().split(/\s+/).map(Number) });
    }
    check('references computed', refs.length === PROMPTS.length && refs.every((r) => r.out.length > 0));
  });

  await test('greedy alone', async () => {
    for (const [k, r] of refs.entries()) {
      const t = await greedy(r.prompt);
      check(`prompt ${k}: text equals bitnet run`, t.text === r.text, JSON.stringify([t.text, r.text]));
      const i = await greedy(r.ids);
      check(`prompt ${k}: ids equal bitnet run --ids`, i.tokens.join(',') === r.out.slice(0, i.tokens.length).join(',') &&
        i.tokens.length === r.out.length, JSON.stringify([i.tokens, r.out]));
    }
  });

  await test('greedy while 15 other streams run', async () => {
    // The 15 streams must all be running before the greedy requests start, and still be running when they
    // end: 240 tokens each, and none more than 120 in when the greedy requests (about 40 steps) go out. On a
    // busy machine one stream can get ahead while the others connect: then the round starts again.
    for (let round = 1; round <= 3; round++) {
      const progress = new Array(15).fill(0);
      const bg = [];
      for (let i = 0; i < 15; i++) bg.push(background(i, progress));
      await until(() => progress.every((n) => n > 0), 30000);
      const m = await metrics(A);
      if (Math.max(...progress) >= 120 && round < 3) {
        bg.forEach((b) => b.abort());
        await until(async () => (await metrics(A)).bitnet_requests_active === 0, 10000);
        continue;
      }
      check('15 streams running', progress.every((n) => n > 0) && m.bitnet_requests_active === 15,
        JSON.stringify([progress, m.bitnet_requests_active]));
      const results = await Promise.all(refs.flatMap((r) => [greedy(r.prompt), greedy(r.ids)]));
      const tEnd = Date.now();
      refs.forEach((r, k) => {
        check(`prompt ${k} beside 15 streams: text`, results[2 * k].text === r.text, JSON.stringify([results[2 * k].text, r.text]));
        check(`prompt ${k} beside 15 streams: ids`, results[2 * k + 1].tokens.join(',') === r.out.join(','));
      });
      const ends = await withTimeout(Promise.all(bg.map((b) => b.done)), 120000, 'background streams');
      check('the 15 streams were still running meanwhile', ends.every((e) => e.end >= tEnd),
        JSON.stringify(ends.map((e) => e.end - tEnd)));
      check('the 15 streams ended with [DONE]', ends.every((e) => e.done));
      break;
    }
  });

  await test('prompt cache: a second turn reuses the first and equals bitnet run', async () => {
    const first = refs[1];
    const r1 = await json(A, 'POST', '/v1/completions', { prompt: first.prompt, max_tokens: N, temperature: 0 });
    const before = (await metrics(A)).bitnet_prompt_tokens_cached_total;
    const second = first.prompt + r1.json.choices[0].text + '\nROMEO:\n';
    const r2 = await json(A, 'POST', '/v1/completions', { prompt: second, max_tokens: N, temperature: 0 });
    const u = r2.json.usage, cached = u.prompt_tokens_details.cached_tokens;
    // the first turn's prompt and most of its reply (tokens at the seam may merge differently)
    check('cached_tokens covers the first turn', cached >= first.ids.length && cached < u.prompt_tokens,
      JSON.stringify([cached, first.ids.length, u.prompt_tokens]));
    check('the second turn equals bitnet run', r2.json.choices[0].text === run(['-p', second]));
    const after = (await metrics(A)).bitnet_prompt_tokens_cached_total;
    check('/metrics counts the cached tokens', after - before === cached, JSON.stringify([before, after, cached]));
    const r3 = await json(A, 'POST', '/v1/completions', { prompt: first.prompt, max_tokens: N, temperature: 0 });
    check('the first prompt again: all but its last token cached, the same text',
      r3.json.usage.prompt_tokens_details.cached_tokens === first.ids.length - 1 &&
      r3.json.choices[0].text === r1.json.choices[0].text, JSON.stringify(r3.json.usage));
  });

  finish('serve_greedy');
})();
