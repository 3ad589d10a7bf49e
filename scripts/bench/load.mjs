/**
 * A small closed-loop HTTP load generator: `concurrency` clients, each sending its next request
 * as soon as the previous answer is read, over keep-alive connections (node:http Agent). The same
 * generator drives the daemon and the bare baseline, so their numbers compare.
 */
import http from 'node:http';

/**
 * @param {object} o
 * @param {string} o.url        base URL, e.g. http://127.0.0.1:7422
 * @param {string} o.path
 * @param {string} [o.method]
 * @param {Record<string,string>} [o.headers]
 * @param {(client: number) => Record<string,string>} [o.headersFor]  extra headers per client (e.g. its token)
 * @param {(client: number, i: number) => string} [o.body]  request body per call
 * @param {number} o.concurrency
 * @param {number} [o.durationMs]  stop starting requests after this long
 * @param {number} [o.requests]    or after this many in total
 * @param {(status: number, body: string) => void} [o.onResponse]
 * @returns {Promise<{count: number, ok: number, errors: number, statuses: Record<number, number>, latencies: number[], elapsedMs: number, rps: number}>}
 */
export async function runLoad(o) {
  const target = new URL(o.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency, maxFreeSockets: o.concurrency });
  const latencies = [];
  const statuses = {};
  let count = 0;
  let ok = 0;
  let errors = 0;
  let started = 0;
  let failure;
  const t0 = performance.now();
  const deadline = o.durationMs === undefined ? Infinity : t0 + o.durationMs;
  let limit = o.requests ?? Infinity;

  const one = (client, i) =>
    new Promise((resolve) => {
      const body = o.body ? o.body(client, i) : undefined;
      const headers = { ...(o.headers ?? {}), ...(o.headersFor?.(client) ?? {}) };
      if (body !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = String(Buffer.byteLength(body));
      }
      const s = performance.now();
      const req = http.request(
        { agent, host: target.hostname, port: target.port, path: o.path, method: o.method ?? 'POST', headers },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => {
            latencies.push(performance.now() - s);
            count++;
            statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
            if (res.statusCode >= 200 && res.statusCode < 300) ok++;
            try {
              o.onResponse?.(res.statusCode, Buffer.concat(chunks).toString('utf8'));
            } catch (e) {
              failure ??= e;
              limit = 0; // stop every client
            }
            resolve();
          });
          res.on('error', () => {
            errors++;
            resolve();
          });
        },
      );
      req.on('error', () => {
        errors++;
        resolve();
      });
      req.end(body);
    });

  const client = async (c) => {
    let i = 0;
    while (performance.now() < deadline && started < limit && !failure) {
      started++;
      await one(c, i++);
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, (_, c) => client(c)));
  const elapsedMs = performance.now() - t0;
  agent.destroy();
  if (failure) throw failure;
  return { count, ok, errors, statuses, latencies, elapsedMs, rps: (ok / elapsedMs) * 1000 };
}

export function percentile(values, p) {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const idx = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[idx];
}

export const median = (values) => percentile(values, 50);

/**
 * Runs subject and baseline once each in round r, alternating which goes first, so a
 * neighbour's burst of CPU hits both sides of a pair alike. Works for sync and async steps.
 */
/** Runs the runners of round r in an order rotated by r (A B C, B C A, C A B, …). */
export async function rotate(r, runners) {
  for (let i = 0; i < runners.length; i++) await runners[(r + i) % runners.length]();
}

export async function pair(r, subject, baseline) {
  if (r % 2) {
    await baseline();
    await subject();
  } else {
    await subject();
    await baseline();
  }
}
