/**
 * The hot route's lean JSON body reader answers as the app's express.json does: the same
 * requests sent to a route behind each, through the app's error handler, get the same answers.
 */
import express from 'express';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorHandler } from '../../src/server/error-answer.js';
import { BODY_LIMIT_BYTES, jsonBody } from '../../src/server/json-body.js';

let server: http.Server;
let port: number;
beforeAll(async () => {
  const app = express();
  const echo = (req: express.Request, res: express.Response) => void res.json({ body: req.body ?? null });
  app.post('/lean', jsonBody, echo);
  app.post('/express', express.json({ limit: BODY_LIMIT_BYTES, strict: true, inflate: false, type: ['application/json', 'application/*+json'] }), echo);
  app.use(errorHandler({ log: pino({ level: 'silent' }) }));
  server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise((r) => server.close(r)));

function send(path: string, headers: Record<string, string>, body: Buffer | string | undefined, chunked = false): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const h: Record<string, string> = { ...headers };
    if (body !== undefined && !chunked && !('content-length' in h)) h['content-length'] = String(Buffer.byteLength(body));
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', headers: h, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(parts).toString() || 'null') }));
    });
    req.on('error', reject);
    if (chunked && body !== undefined) {
      const b = Buffer.from(body);
      for (let i = 0; i < b.length; i += 1000) req.write(b.subarray(i, i + 1000));
      req.end();
    } else req.end(body);
  });
}

const JSON_CT = { 'content-type': 'application/json' };
const cases: Array<[string, Record<string, string>, string | Buffer | undefined, boolean?]> = [
  ['an object', JSON_CT, '{"target":"prod-db","n":1}'],
  ['an array', JSON_CT, '[1,2]'],
  ['leading whitespace', JSON_CT, ' \n\t{"a":true}'],
  ['a vendor +json type with utf-8 charset', { 'content-type': 'application/vnd.jit+json; charset=UTF-8' }, '{"a":1}'],
  ['a byte-order mark', JSON_CT, '\ufeff{"a":1}'],
  ['a number at the top (not strict JSON)', JSON_CT, '1'],
  ['a string at the top', JSON_CT, '"x"'],
  ['broken JSON', JSON_CT, '{"a":'],
  ['an empty chunked body', JSON_CT, '', true],
  ['no body at all', JSON_CT, undefined],
  ['text/plain', { 'content-type': 'text/plain' }, '{"a":1}'],
  ['no content type', {}, '{"a":1}'],
  ['a latin-1 charset', { 'content-type': 'application/json; charset=latin1' }, '{"a":1}'],
  ['an unknown content encoding', { ...JSON_CT, 'content-encoding': 'x-zip' }, '{"a":1}'],
  ['a body over the limit (declared)', JSON_CT, `{"a":"${'x'.repeat(BODY_LIMIT_BYTES)}"}`],
  ['a body over the limit (chunked)', JSON_CT, `{"a":"${'x'.repeat(BODY_LIMIT_BYTES)}"}`, true],
  ['a body at the limit', JSON_CT, `{"a":"${'x'.repeat(BODY_LIMIT_BYTES - 8)}"}`],
];

describe('lean JSON body reader (the issue route)', () => {
  for (const [what, headers, body, chunked] of cases) {
    it(`ok/${what}: the same answer as express.json`, async () => {
      const [lean, ref] = [await send('/lean', headers, body, chunked), await send('/express', headers, body, chunked)];
      expect(lean).toEqual(ref);
    });
  }
  it('ok/the answers themselves: 413, 400 and 415 with the app\'s codes', async () => {
    expect((await send('/lean', JSON_CT, `"${'x'.repeat(BODY_LIMIT_BYTES + 1)}"`)).status).toBe(413);
    expect((await send('/lean', JSON_CT, '{')).json).toMatchObject({ error: { code: 'bad_request' } });
    expect((await send('/lean', { 'content-type': 'application/json; charset=utf-16' }, '{}')).status).toBe(415);
  });
  it('ok/a gzip body is refused (415), as the app\'s express.json (inflate: false) refuses it', async () => {
    const gz: [string, Record<string, string>, Buffer] = ['gzip', { ...JSON_CT, 'content-encoding': 'gzip' }, Buffer.from([0x1f, 0x8b])];
    expect(await send('/lean', gz[1], gz[2])).toEqual(await send('/express', gz[1], gz[2]));
    expect((await send('/lean', gz[1], gz[2])).status).toBe(415);
  });
});
