/**
 * The http_ratio baseline: a bare express 5 endpoint in its own process, with the daemon's
 * JSON body parser, answering every POST with a fixed JSON body of the size given (bytes).
 * Usage: node bare-server.mjs <responseBytes>
 */
import express from 'express';

const size = Number(process.argv[2] ?? 1000);
const skeleton = { id: 'req_0000000000000000', status: 'issued', certificate: '' };
const pad = Math.max(0, size - Buffer.byteLength(JSON.stringify(skeleton)));
const fixed = JSON.stringify({ ...skeleton, certificate: 'A'.repeat(pad) });

const app = express();
app.disable('x-powered-by');
app.set('etag', false);
app.use(express.json({ limit: '64kb', strict: true }));
app.post('/v1/requests', (_req, res) => {
  res.status(201).type('application/json').send(fixed);
});
const server = app.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  process.stdout.write(JSON.stringify({ url: `http://127.0.0.1:${port}`, bytes: Buffer.byteLength(fixed) }) + '\n');
});
process.once('SIGTERM', () => server.close(() => process.exit(0)));
