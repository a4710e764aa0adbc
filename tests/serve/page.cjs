// The chat page in headless Chromium (Debian's, driven by puppeteer-core): it loads, shows the
// model, a typed prompt streams a reply into the page, and a screenshot goes to build/.
//   PORT_A: bitnet serve -m models/shakespeare;  CHROMIUM: the browser binary
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const puppeteer = require('puppeteer-core');
const { check, test, finish, withTimeout } = require('./lib.cjs');

const A = Number(process.env.PORT_A);
const SHOT = 'build/serve-chat.png';

(async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'bitnet-chromium-'));
  let browser = null;
  await test('chat page', async () => {
    browser = await withTimeout(puppeteer.launch({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      userDataDir: profile,
      args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
        '--no-first-run', '--disable-sync', '--disable-dev-shm-usage'],
    }), 60000, 'chromium start');
    const page = await browser.newPage();
    await page.setViewport({ width: 900, height: 640 });
    const requests = [];
    page.on('request', (r) => requests.push(r.url()));
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    // keep what the page's stream readers read, to compare the page with the events it was sent
    await page.evaluateOnNewDocument(() => {
      const read = ReadableStreamDefaultReader.prototype.read, decoder = new TextDecoder();
      window.sseText = '';
      ReadableStreamDefaultReader.prototype.read = function () {
        return read.call(this).then((r) => {
          if (r.value) window.sseText += decoder.decode(r.value, { stream: true });
          return r;
        });
      };
    });
    await page.goto(`http://127.0.0.1:${A}/`, { waitUntil: 'load', timeout: 30000 });
    check('the page loads', (await page.title()) === 'bitnet.h chat');
    await page.waitForFunction(() => document.getElementById('model').textContent === 'shakespeare', { timeout: 20000 });
    check('the model name shows', true);
    // count how often the reply's text changes while it streams
    await page.evaluate(() => {
      window.updates = 0;
      new MutationObserver((ms) => {
        for (const m of ms) {
          const el = m.target.nodeType === 1 ? m.target : m.target.parentElement;
          if (el && el.closest('.msg.assistant')) window.updates++;
        }
      }).observe(document.getElementById('log'), { subtree: true, childList: true, characterData: true });
    });
    // the model writes faster than a loaded machine's browser reads: a slow link (16 KB/s for the
    // ~40 KB of events) makes the stream arrive over a couple of seconds, as from a real server far away
    await page.emulateNetworkConditions({ download: 16 * 1024, upload: 1 << 20, latency: 0 });
    await page.click('#toggle');
    await page.$eval('#max_tokens', (e) => { e.value = '120'; });
    await page.$eval('#temperature', (e) => { e.value = '0'; });
    await page.click('#toggle');
    await page.type('#prompt', 'O Romeo, Romeo!');
    await page.keyboard.press('Enter');
    await page.waitForSelector('.msg.assistant[data-done="1"]', { timeout: 60000 });
    const reply = await page.$eval('.msg.assistant .text', (e) => e.textContent);
    const user = await page.$eval('.msg.user .text', (e) => e.textContent);
    const updates = await page.evaluate(() => window.updates);
    const status = await page.$eval('#status', (e) => e.textContent);
    // The server sends in one event all the text made since its last send: on a loaded machine it may
    // send a short reply of this small model in one. The page must show each event as it comes.
    const deltas = await page.evaluate(() => window.sseText.split('\n\n')
      .filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)))
      .flatMap((chunk) => (chunk.choices || []).map((c) => (c.delta && c.delta.content) || '')).filter((t) => t));
    check('the prompt shows as the user message', user === 'O Romeo, Romeo!');
    check('the events carry the reply', deltas.join('') === reply, JSON.stringify({ reply, deltas }));
    check('a reply streamed into the page, shown at each event', reply.length > 20 && deltas.length >= 1 &&
      updates >= deltas.length, JSON.stringify({ reply, updates, events: deltas.length }));
    await page.emulateNetworkConditions(null);
    check('the status line reports the speed', /tokens, [\d.]+ tok\/s/.test(status), status);
    check('no script errors', errors.length === 0, errors.join('; '));
    check('no external requests', requests.every((u) => u.startsWith(`http://127.0.0.1:${A}/`)), requests.join(' '));
    // the same conversation through the API gives the same greedy reply
    const r = await page.evaluate(async () => {
      const res = await fetch('/v1/chat/completions', { method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ messages: [{ role: 'user', content: 'O Romeo, Romeo!' }], max_tokens: 120, temperature: 0 }) });
      return (await res.json()).choices[0].message.content;
    });
    check('the page shows what the API answers', r === reply, JSON.stringify([r, reply]));
    fs.mkdirSync('build', { recursive: true });
    await page.screenshot({ path: SHOT });
    check('screenshot written to ' + SHOT, fs.statSync(SHOT).size > 1000);
  });
  if (browser) await browser.close().catch(() => {});
  fs.rmSync(profile, { recursive: true, force: true });
  finish('serve_page');
})();
