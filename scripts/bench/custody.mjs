/**
 * pkcs11_sign_ratio and agent_sign_ratio: certificates/s (encode + sign + assemble, 32 in
 * flight) with an ed25519 CA key held in SoftHSM2 or in a real ssh-agent, each over the file
 * backend (key in process) in the same run, interleaved round by round; medians over rounds.
 * Signatures from the token and the agent are verified before use (as the daemon does).
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { attachSignature, certificateBody } from '../../dist/ca/cert.js';
import { createSigner } from '../../dist/ca/signer.js';
import { encodeOpenSshPrivateKey } from '../../dist/ca/openssh-key.js';
import { asyncSigner } from '../../dist/signer/file.js';
import { benchCertParams, ed25519 } from './fixture.mjs';
import { median, pair } from './load.mjs';

const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';
const IN_FLIGHT = 32;

const has = (tool) => {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

/** Certificates per second through signer for ms, IN_FLIGHT at once. */
async function rate(signer, params, ms) {
  let n = 0;
  const t0 = performance.now();
  const end = t0 + ms;
  const worker = async () => {
    while (performance.now() < end) {
      const body = certificateBody(params(n++), signer.publicKeyBlob);
      attachSignature(body, await signer.sign(body.body));
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  return n / ((performance.now() - t0) / 1000);
}

export async function measureCustody({ quick, progress }) {
  const out = { notes: [] };
  const dir = mkdtempSync(join(tmpdir(), 'jit-bench-custody-'));
  const closers = [];
  try {
    const subject = ed25519('subject').publicLine;
    const subjectBlob = Buffer.from(subject.split(' ')[1], 'base64');
    const params = benchCertParams(subjectBlob);
    const fileKey = ed25519('bench-ca');
    const file = asyncSigner(createSigner(fileKey.privateKey, 'bench-ca'));

    const subjects = [];
    if (existsSync(SOFTHSM_MODULE) && has('softhsm2-util')) {
      mkdirSync(join(dir, 'tokens'));
      writeFileSync(join(dir, 'softhsm2.conf'), `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`);
      process.env.SOFTHSM2_CONF = join(dir, 'softhsm2.conf');
      execFileSync('softhsm2-util', ['--init-token', '--free', '--label', 'bench', '--pin', '1234', '--so-pin', '5678'], { stdio: 'ignore' });
      const { pkcs11Custody } = await import('../../dist/signer/pkcs11.js');
      const custody = await pkcs11Custody({ module: SOFTHSM_MODULE, tokenLabel: 'bench', pin: '1234', keyLabel: 'bench-ca', sessions: 2 });
      closers.push(() => custody.close());
      const k = custody.create('ed25519');
      subjects.push(['pkcs11', custody.open(k.location, k.fingerprint, k.publicKeyLine), 'SoftHSM2 token, 2 sessions']);
    } else out.notes.push('pkcs11_sign_ratio: softhsm2 is not installed (apt-get install -y softhsm2)');

    if (has('ssh-agent') && has('ssh-add')) {
      const socket = join(dir, 'agent.sock');
      const agent = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
      closers.push(() => agent.kill('SIGTERM'));
      for (let i = 0; i < 100 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 20));
      const keyFile = join(dir, 'agent-ca');
      const agentKey = ed25519('bench-agent-ca');
      writeFileSync(keyFile, encodeOpenSshPrivateKey(agentKey.privateKey, 'bench-agent-ca', 1), { mode: 0o600 });
      execFileSync('ssh-add', [keyFile], { env: { ...process.env, SSH_AUTH_SOCK: socket }, stdio: 'ignore' });
      const { agentCustody } = await import('../../dist/signer/agent.js');
      const custody = await agentCustody({ socket, key: agentKey.publicLine });
      closers.push(() => custody.close());
      const k = custody.configured();
      subjects.push(['agent', custody.open(k.location, k.fingerprint, k.publicKeyLine), 'OpenSSH ssh-agent, 4 connections']);
    } else out.notes.push('agent_sign_ratio: ssh-agent is not installed');

    const rounds = quick ? 3 : 9;
    const ms = quick ? 200 : 400;
    for (const [name, signer, what] of subjects) {
      progress(`custody: ${name} (${what}) vs file backend, ${IN_FLIGHT} in flight, interleaved`);
      await rate(signer, params, 100); // warm up
      await rate(file, params, 100);
      const ours = [];
      const base = [];
      const ratios = [];
      for (let r = 0; r < rounds; r++) {
        await pair(r, async () => ours.push(await rate(signer, params, ms)), async () => base.push(await rate(file, params, ms)));
        ratios.push(ours[r] / base[r]);
      }
      out[name] = { per_s: Math.round(median(ours)), file_per_s: Math.round(median(base)), ratio: Math.round(median(ratios) * 1000) / 1000, what };
      progress(`custody: ${name} ${out[name].per_s}/s vs file ${out[name].file_per_s}/s → ratio ${out[name].ratio}`);
    }
  } finally {
    for (const c of closers.reverse()) await c();
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}
