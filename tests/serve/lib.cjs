// Helpers shared by the bitnet serve tests (tests/test_serve.sh runs them).
// Every request goes to 127.0.0.1 and every wait is bounded.
'use strict';
const net = require('net');
const http = require('http');

let passed = 0, failed = 0;

function check(name, cond, detail) {
  if (cond) { passed++; console.log('ok   ' + name); }
  else { failed++; console.log('FAIL ' + name + (detail !== undefined ? ': ' + detail : '')); }
  return !!cond;
}

// Runs fn; an exception counts as one failed check named `name`.
async function test(name, fn) {
  try { await fn(); }
  catch (e) { check(name, false, 'threw ' + (e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e)); }
}

function finish(suite) {
  console.log(`${suite}: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function withTimeout(promise, ms, what) {
  let t;
  return Promise.race([
    promise.finally(() => clearTimeout(t)),
    new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`${what}: no answer after ${ms} ms`)), ms); }),
  ]);
}

// Sends raw bytes on a fresh connection and collects everything until the server closes
// (or timeoutMs passes). end: half-close after writing. pauseMs: delay between pieces.
function raw(port, pieces, { timeoutMs = 5000, end = false, pauseMs = 0 } = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const chunks = [];
    let done = false;
    const sock = net.connect(port, '127.0.0.1');
    const finishWith = (closed) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ data: Buffer.concat(chunks), closed, ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => finishWith(false), timeoutMs);
    sock.on('data', (d) => chunks.push(d));
    sock.on('close', () => finishWith(true));
    sock.on('error', () => finishWith(true));
    sock.on('connect', async () => {
      for (const p of [].concat(pieces)) {
        if (done) return;
        sock.write(p);
        if (pauseMs) await sleep(pauseMs);
      }
      if (end && !done) sock.end();
    });
  });
}

// The status line, headers and body of a raw HTTP/1.1 response (Content-Length or chunked).
function parseResponse(buf) {
  const s = buf.toString('latin1');
  const at = s.indexOf('\r\n\r\n');
  if (at < 0) return null;
  const lines = s.slice(0, at).split('\r\n');
  const m = /^HTTP\/1\.1 (\d{3}) /.exec(lines[0]);
  if (!m) return null;
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  let body = buf.subarray(at + 4);
  if (headers['content-length'] !== undefined) body = body.subarray(0, Number(headers['content-length']));
  return { status: Number(m[1]), headers, body: body.toString('utf8') };
}

// A plain HTTP request with node's http module: {status, headers, body}.
function request(port, method, path, { body, headers = {}, timeoutMs = 60000 } = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : (typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body));
    const req = http.request({ host: '127.0.0.1', port, method, path, headers: {
      ...(data !== undefined ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } : {}),
      ...headers } }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(parts).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (data !== undefined) req.write(data);
    req.end();
  }), timeoutMs, `${method} ${path}`);
}

async function json(port, method, path, body, headers) {
  const r = await request(port, method, path, { body, headers });
  let parsed = null;
  try { parsed = JSON.parse(r.body); } catch (e) { /* left null */ }
  return { ...r, json: parsed };
}

// /metrics as {name or name{labels}: value}.
async function metrics(port, headers) {
  const r = await request(port, 'GET', '/metrics', { headers });
  const out = {};
  for (const line of r.body.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return out;
}

// Polls cond() every 50 ms until it is true or ms pass; returns its last value.
async function until(cond, ms) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v || Date.now() > end) return v;
    await sleep(50);
  }
}

module.exports = { check, test, finish, sleep, withTimeout, raw, parseResponse, request, json, metrics, until };
