/**
 * growth_ratio's history: N real issuances written into a data dir through the daemon's own
 * store (openStore: serial allocator + hash-chained, fdatasync'ed audit log), each a real
 * certificate signed by the data dir's CA key, with the same fields service/issue.ts audits.
 * Issue times are spread evenly over the last `spanHours` hours with the injected clock, so
 * when the daemon starts on this dir it replays and prunes them as it would in production:
 * only grants still valid (plus the grace period) stay in memory.
 *
 * Usage: node prefill.mjs <dataDir> <count> <spanHours>   (progress on stderr, result JSON on stdout)
 */
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { openStore } from '../../dist/store/index.js';
import { initKeyring, openKeyring } from '../../dist/store/ca-keys.js';
import { fileCustody } from '../../dist/signer/file.js';
import { attachSignature, certificateBody } from '../../dist/ca/cert.js';
import { fingerprintOf } from '../../dist/ca/keys.js';
import { publicKeyBlobOf } from '../../dist/ca/signer.js';

const [dataDir, countArg, spanArg] = process.argv.slice(2);
const count = Number(countArg ?? 100_000);
const spanMs = Number(spanArg ?? 336) * 3600_000;
const TTL = 15 * 60;
const BACKDATE = 60;
const BATCH = 2000;

const custody = fileCustody(dataDir);
initKeyring(dataDir, 'ed25519', custody);
const signer = openKeyring(dataDir, custody).active();
let nowMs = Date.now() - spanMs;
// As the daemon runs it: start-up snapshots on, the last one written on close (a clean shutdown).
const store = await openStore(dataDir, { clock: () => new Date(nowMs), snapshots: true });
store.startSnapshots({ everyRecords: 10_000, intervalSec: 300, onError: (e) => { throw e; } });

const subjects = Array.from({ length: 64 }, (_, i) => {
  const blob = publicKeyBlobOf(generateKeyPairSync('ed25519').privateKey);
  return { blob, line: `ssh-ed25519 ${blob.toString('base64')} subject${i}@bench`, fingerprint: fingerprintOf(blob) };
});

const t0 = performance.now();
let lastReport = t0;
for (let done = 0; done < count; ) {
  const n = Math.min(BATCH, count - done);
  // The batch's certificates are signed together (the signer works on the thread pool), then
  // audited in order, each at its own issue time.
  const items = [];
  for (let j = 0; j < n; j++, done++) {
    const issuedMs = Date.now() - spanMs + Math.floor((spanMs * done) / count);
    const nowSec = Math.floor(issuedMs / 1000);
    const user = `u${done % 32}`;
    const subject = subjects[done % subjects.length];
    const id = `req_${randomBytes(12).toString('base64url')}`;
    const keyId = `jit-ssh:${id}:${user}:check-logs`;
    const serial = await store.serials.next();
    const principals = ['readonly@prod-db'];
    const criticalOptions = { 'source-address': '127.0.0.1/32' };
    const extensions = { 'permit-pty': '' };
    const validAfter = nowSec - BACKDATE;
    const validBefore = nowSec + TTL;
    const body = certificateBody(
      {
        type: 'user',
        publicKey: subject.blob,
        serial,
        keyId,
        principals,
        validAfter: BigInt(validAfter),
        validBefore: BigInt(validBefore),
        criticalOptions,
        extensions,
        nonce: randomBytes(32),
      },
      signer.publicKeyBlob,
    );
    items.push({ issuedMs, user, subject, id, keyId, serial, principals, criticalOptions, extensions, validAfter, validBefore, body, sig: signer.sign(body.body) });
  }
  const appends = [];
  for (const it of items) {
    const { line } = attachSignature(it.body, await it.sig);
    nowMs = it.issuedMs; // the record's time is read when it is appended
    appends.push(
      store.audit.append({
        type: 'issue',
        id: it.id,
        user: it.user,
        target: 'prod-db',
        task: 'check-logs',
        account: 'readonly',
        rule: 'oncall-auto',
        serial: it.serial.toString(),
        keyId: it.keyId,
        principals: it.principals,
        criticalOptions: it.criticalOptions,
        extensions: it.extensions,
        validAfter: it.validAfter,
        validBefore: it.validBefore,
        ca: signer.fingerprint,
        keyFingerprint: it.subject.fingerprint,
        approvals: [],
        sourceAddress: '127.0.0.1',
        publicKey: it.subject.line,
        certificate: line,
      }),
    );
  }
  await Promise.all(appends);
  if (performance.now() - lastReport > 2000) {
    lastReport = performance.now();
    process.stderr.write(`  prefill: ${done}/${count} issuances written\n`);
  }
}
nowMs = Date.now();
await store.close();
const seconds = (performance.now() - t0) / 1000;
process.stdout.write(JSON.stringify({ count, seconds, digest: createHash('sha256').update(dataDir).digest('hex').slice(0, 8) }) + '\n');
