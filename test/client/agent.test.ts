import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, verify, type KeyObject } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient, agentFromEnv } from '../../src/client/agent.js';
import { WireReader, WireWriter } from '../../src/ca/wire.js';

/** The test's own reads of well-formed data. */
const TEST_DATA = { code: 'internal', what: 'test data' } as const;
import { JitError } from '../../src/errors.js';
import { describeWithTools, findTool } from '../helpers/tools.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function ed25519PubBlob(key: KeyObject): Buffer {
  const x = key.export({ format: 'jwk' }).x as string;
  return new WireWriter().string('ssh-ed25519').string(Buffer.from(x, 'base64url')).toBuffer();
}

async function expectJitError(p: Promise<unknown>, code: string, message?: RegExp): Promise<JitError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(JitError);
  expect((err as JitError).code).toBe(code);
  if (message) expect((err as JitError).message).toMatch(message);
  return err as JitError;
}

/** A minimal cert blob for the fake-agent tests: only type, nonce and key are read by the client. */
function fakeCertFor(key: KeyObject): Buffer {
  const x = Buffer.from(key.export({ format: 'jwk' }).x as string, 'base64url');
  return new WireWriter().string('ssh-ed25519-cert-v01@openssh.com').string(Buffer.alloc(32, 7)).string(x).toBuffer();
}

/**
 * A scripted agent on a private socket: it records every request and answers with whatever
 * `answer` returns (undefined = stay silent), so framing and error paths are pinned exactly.
 */
class FakeAgent {
  readonly requests: Array<{ type: number; body: Buffer }> = [];
  readonly path: string;
  private server: Server;
  private sockets = new Set<Socket>();
  connections = 0;
  answer: (type: number, body: Buffer) => Buffer | undefined = () => frame(6, Buffer.alloc(0));

  constructor(dir: string, name: string) {
    this.path = join(dir, name);
    this.server = createServer((sock) => {
      this.connections++;
      this.sockets.add(sock);
      sock.on('close', () => this.sockets.delete(sock));
      let buf = Buffer.alloc(0);
      sock.on('data', (chunk) => {
        buf = Buffer.concat([buf, chunk]);
        while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
          const len = buf.readUInt32BE(0);
          const type = buf[4];
          const body = buf.subarray(5, 4 + len);
          buf = buf.subarray(4 + len);
          this.requests.push({ type, body: Buffer.from(body) });
          const reply = this.answer(type, body);
          if (reply) sock.write(reply);
        }
      });
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.path, resolve));
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

function frame(type: number, body: Buffer): Buffer {
  return new WireWriter()
    .uint32(body.length + 1)
    .byte(type)
    .raw(body)
    .toBuffer();
}

describe('AgentClient against a scripted agent', () => {
  let dir: string;
  const fakes: FakeAgent[] = [];
  const clients: AgentClient[] = [];

  async function fake(name: string): Promise<FakeAgent> {
    const f = new FakeAgent(dir, name);
    await f.listen();
    fakes.push(f);
    return f;
  }
  function client(path: string, timeoutMs?: number): AgentClient {
    const c = new AgentClient(path, { timeoutMs });
    clients.push(c);
    return c;
  }

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'jit-agent-fake-'));
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    for (const f of fakes) await f.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('ok/add with lifetime and confirm sends msg 25 with the OpenSSH cert body and both constraints', async () => {
    const f = await fake('a.sock');
    const { privateKey } = generateKeyPairSync('ed25519');
    const cert = fakeCertFor(privateKey);
    await client(f.path).addEd25519WithCert({ privateKey, certificate: cert, comment: 'c1', lifetimeSeconds: 300, confirm: true });

    expect(f.requests).toHaveLength(1);
    const { type, body } = f.requests[0];
    expect(type).toBe(25);
    const jwk = privateKey.export({ format: 'jwk' });
    const d = Buffer.from(jwk.d as string, 'base64url');
    const x = Buffer.from(jwk.x as string, 'base64url');
    const r = new WireReader(body, TEST_DATA);
    expect(r.utf8()).toBe('ssh-ed25519-cert-v01@openssh.com');
    expect(r.string().equals(cert)).toBe(true);
    expect(r.string().equals(x)).toBe(true);
    expect(r.string().equals(Buffer.concat([d, x]))).toBe(true);
    expect(r.utf8()).toBe('c1');
    expect(r.byte()).toBe(1);
    expect(r.uint32()).toBe(300);
    expect(r.byte()).toBe(2);
    r.end();
  });

  it('ok/add without constraints sends msg 17 and nothing after the comment', async () => {
    const f = await fake('b.sock');
    const { privateKey } = generateKeyPairSync('ed25519');
    await client(f.path).addEd25519WithCert({ privateKey, certificate: fakeCertFor(privateKey), comment: 'plain', confirm: false });
    expect(f.requests[0].type).toBe(17);
    const r = new WireReader(f.requests[0].body, TEST_DATA);
    for (let i = 0; i < 4; i++) r.string();
    expect(r.utf8()).toBe('plain');
    r.end();
  });

  it('ok/concurrent requests are answered in order on one connection', async () => {
    const f = await fake('c.sock');
    let n = 0;
    f.answer = (type) => {
      expect(type).toBe(11);
      n++;
      const w = new WireWriter().uint32(1).string(Buffer.from(`key-${n}`)).string(`comment-${n}`);
      return frame(12, w.toBuffer());
    };
    const c = client(f.path);
    const results = await Promise.all([c.listIdentities(), c.listIdentities(), c.listIdentities()]);
    expect(results.map((r) => r[0].comment)).toEqual(['comment-1', 'comment-2', 'comment-3']);
    expect(results[2][0].blob.toString()).toBe('key-3');
    expect(f.connections).toBe(1);
  });

  it('ok/replies split across many writes are reassembled', async () => {
    const f = await fake('split.sock');
    const c = client(f.path);
    f.answer = () => undefined;
    const sig = new WireWriter().string('ssh-ed25519').string(Buffer.alloc(64, 9)).toBuffer();
    const p = c.sign(Buffer.from('k'), Buffer.from('data'), 4);
    await sleep(50);
    const reply = frame(14, new WireWriter().string(sig).toBuffer());
    // Trickle the reply in one byte at a time through the server side of the connection.
    const server = (f as unknown as { sockets: Set<Socket> }).sockets.values().next().value as Socket;
    for (const b of reply) server.write(Buffer.of(b));
    expect((await p).equals(sig)).toBe(true);
    const r = new WireReader(f.requests[0].body, TEST_DATA);
    expect(r.utf8()).toBe('k');
    expect(r.utf8()).toBe('data');
    expect(r.uint32()).toBe(4);
    r.end();
  });

  it('fail/SSH_AGENT_FAILURE becomes bad_request "ssh-agent refused …", and the next request still works', async () => {
    const f = await fake('d.sock');
    let refuse = true;
    f.answer = () => frame(refuse ? 5 : 6, Buffer.alloc(0));
    const c = client(f.path);
    await expectJitError(c.removeIdentity(Buffer.from('x')), 'bad_request', /^ssh-agent refused/);
    refuse = false;
    await expect(c.removeIdentity(Buffer.from('x'))).resolves.toBeUndefined();
  });

  it('fail/a silent agent times out as unreachable, and the client reconnects afterwards', async () => {
    const f = await fake('e.sock');
    f.answer = () => undefined;
    const c = client(f.path, 300);
    const t0 = Date.now();
    await expectJitError(c.listIdentities(), 'unreachable', /ssh-agent did not answer/);
    expect(Date.now() - t0).toBeLessThan(2_000);
    f.answer = () => frame(12, new WireWriter().uint32(0).toBuffer());
    await expect(c.listIdentities()).resolves.toEqual([]);
    expect(f.connections).toBe(2);
  });

  it('fail/an oversized reply length is refused', async () => {
    const f = await fake('big.sock');
    f.answer = () => Buffer.from([0xff, 0xff, 0xff, 0xff, 12]);
    await expectJitError(client(f.path).listIdentities(), 'bad_request', /malformed/);
  });

  it('fail/an agent that hangs up mid-request is unreachable', async () => {
    const f = await fake('f.sock');
    const c = client(f.path);
    f.answer = () => {
      (f as unknown as { sockets: Set<Socket> }).sockets.forEach((s) => s.destroy());
      return undefined;
    };
    await expectJitError(c.listIdentities(), 'unreachable');
  });

  it('fail/a certificate for another key is refused before the agent sees it', async () => {
    const f = await fake('g.sock');
    const { privateKey } = generateKeyPairSync('ed25519');
    const other = generateKeyPairSync('ed25519').privateKey;
    await expectJitError(
      client(f.path).addEd25519WithCert({ privateKey, certificate: fakeCertFor(other), comment: 'x' }),
      'invalid_certificate',
    );
    expect(f.requests).toHaveLength(0);
  });

  it('fail/non-ed25519 keys and bad lifetimes are refused', async () => {
    const f = await fake('h.sock');
    const c = client(f.path);
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const ed = generateKeyPairSync('ed25519').privateKey;
    await expectJitError(c.addEd25519WithCert({ privateKey: ec, certificate: fakeCertFor(ed), comment: 'x' }), 'invalid_key');
    for (const lifetimeSeconds of [0, -1, 1.5, 2 ** 32]) {
      await expectJitError(
        c.addEd25519WithCert({ privateKey: ed, certificate: fakeCertFor(ed), comment: 'x', lifetimeSeconds }),
        'invalid_field',
      );
    }
    expect(f.requests).toHaveLength(0);
  });

  it('fail/a socket path with nobody listening is unreachable at once', async () => {
    const t0 = Date.now();
    await expectJitError(client(join(dir, 'nobody-here.sock')).listIdentities(), 'unreachable', /cannot reach ssh-agent/);
    expect(Date.now() - t0).toBeLessThan(1_000);
  });

  it('ok/agentFromEnv follows SSH_AUTH_SOCK', () => {
    expect(agentFromEnv({})).toBeUndefined();
    expect(agentFromEnv({ SSH_AUTH_SOCK: '' })).toBeUndefined();
    expect(agentFromEnv({ SSH_AUTH_SOCK: '/tmp/x.sock' })?.socketPath).toBe('/tmp/x.sock');
  });
});

describeWithTools(['ssh-agent', 'ssh-add', 'ssh-keygen'], 'AgentClient against OpenSSH ssh-agent', () => {
  let dir: string;
  let sock: string;
  let agentProc: ChildProcess | undefined;
  let agent: AgentClient;

  const keygen = (...args: string[]) => execFileSync(findTool('ssh-keygen')!, args, { cwd: dir, stdio: 'pipe' });

  /** `ssh-add -L` lines against our private agent; exit 1 with "no identities" means none. */
  function sshAddList(): string[] {
    try {
      return execFileSync(findTool('ssh-add')!, ['-L'], {
        env: { ...process.env, SSH_AUTH_SOCK: sock },
        encoding: 'utf8',
        stdio: 'pipe',
      })
        .split('\n')
        .filter(Boolean);
    } catch (e) {
      const err = e as { status?: number; stdout?: string };
      if (err.status === 1 && /no identities/i.test(err.stdout ?? '')) return [];
      throw e;
    }
  }

  /** A fresh node-generated ed25519 key, certified by the test CA through ssh-keygen -s. */
  function certifiedKey(name: string): { privateKey: KeyObject; pubBlob: Buffer; certBlob: Buffer; certLine: string } {
    const { privateKey } = generateKeyPairSync('ed25519');
    const pubBlob = ed25519PubBlob(privateKey);
    writeFileSync(join(dir, `${name}.pub`), `ssh-ed25519 ${pubBlob.toString('base64')} ${name}\n`);
    keygen('-q', '-s', 'ca', '-I', `id-${name}`, '-n', 'p', '-V', '+5m', `${name}.pub`);
    const certLine = readFileSync(join(dir, `${name}-cert.pub`), 'utf8').trim();
    const certBlob = Buffer.from(certLine.split(' ')[1], 'base64');
    return { privateKey, pubBlob, certBlob, certLine };
  }

  const b64 = (blob: Buffer) => blob.toString('base64');
  const listed = (blob: Buffer) => sshAddList().some((l) => l.split(' ')[1] === b64(blob));

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jit-agent-'));
    sock = join(dir, 'agent.sock');
    agentProc = spawn(findTool('ssh-agent')!, ['-D', '-a', sock], { stdio: 'ignore' });
    for (let i = 0; i < 100 && !existsSync(sock); i++) await sleep(50);
    if (!existsSync(sock)) throw new Error('ssh-agent did not create its socket');
    keygen('-q', '-t', 'ed25519', '-N', '', '-C', 'test-ca', '-f', 'ca');
    agent = new AgentClient(sock);
  });

  afterAll(() => {
    agent?.close();
    agentProc?.kill();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('ok/adds key+cert with a lifetime; ssh-add and listIdentities see the cert; sign verifies; it expires', async () => {
    const k = certifiedKey('user1');
    const t0 = Date.now();
    await agent.addEd25519WithCert({ privateKey: k.privateKey, certificate: k.certBlob, comment: 'jit-ssh:user1', lifetimeSeconds: 2 });

    // ssh-add -L prints "<type> <base64> <comment>": the agent stored exactly our cert.
    const line = sshAddList().find((l) => l.split(' ')[1] === b64(k.certBlob));
    expect(line).toBe(`ssh-ed25519-cert-v01@openssh.com ${b64(k.certBlob)} jit-ssh:user1`);

    const ids = await agent.listIdentities();
    const mine = ids.find((i) => i.blob.equals(k.certBlob));
    expect(mine?.comment).toBe('jit-ssh:user1');

    // ssh offers the certificate, so the agent signs by the cert blob. It matches identities by
    // exact key type, so the plain blob does not reach a key that was added only with its cert.
    const data = Buffer.from('challenge-to-sign');
    const pub = createPublicKey(k.privateKey);
    const sig = new WireReader(await agent.sign(k.certBlob, data), TEST_DATA);
    expect(sig.utf8()).toBe('ssh-ed25519');
    const raw = sig.string();
    sig.end();
    expect(verify(null, data, pub, raw)).toBe(true);
    expect(verify(null, Buffer.from('other data'), pub, raw)).toBe(false);
    await expectJitError(agent.sign(k.pubBlob, data), 'bad_request', /ssh-agent refused to sign/);

    await sleep(Math.max(0, t0 + 3_200 - Date.now()));
    expect(listed(k.certBlob)).toBe(false);
    expect((await agent.listIdentities()).some((i) => i.blob.equals(k.certBlob))).toBe(false);
    await expectJitError(agent.sign(k.certBlob, data), 'bad_request', /ssh-agent refused/);
  });

  it('ok/sign with a plain key the user added (ssh-add) verifies with node crypto', async () => {
    keygen('-q', '-t', 'ed25519', '-N', '', '-C', 'alice@laptop', '-f', 'plain');
    execFileSync(findTool('ssh-add')!, ['-q', join(dir, 'plain')], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: 'pipe' });
    const blob = Buffer.from(readFileSync(join(dir, 'plain.pub'), 'utf8').split(' ')[1], 'base64');
    const held = (await agent.listIdentities()).find((i) => i.blob.equals(blob));
    expect(held?.comment).toBe('alice@laptop');

    const kr = new WireReader(blob, TEST_DATA);
    expect(kr.utf8()).toBe('ssh-ed25519');
    const pub = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: kr.string().toString('base64url') }, format: 'jwk' });
    const data = Buffer.from('jit-ssh challenge');
    const sig = new WireReader(await agent.sign(blob, data, 0), TEST_DATA);
    expect(sig.utf8()).toBe('ssh-ed25519');
    const raw = sig.string();
    sig.end();
    expect(verify(null, data, pub, raw)).toBe(true);
    await agent.removeIdentity(blob);
    expect(listed(blob)).toBe(false);
  });

  it('ok/an unconstrained add stays until removeIdentity removes it', async () => {
    const k = certifiedKey('user2');
    await agent.addEd25519WithCert({ privateKey: k.privateKey, certificate: k.certBlob, comment: 'jit-ssh:user2' });
    expect(listed(k.certBlob)).toBe(true);
    await agent.removeIdentity(k.certBlob);
    expect(listed(k.certBlob)).toBe(false);
    expect((await agent.listIdentities()).some((i) => i.blob.equals(k.certBlob))).toBe(false);
  });

  it('fail/removing an identity the agent does not hold is refused', async () => {
    const k = certifiedKey('user3');
    await expectJitError(agent.removeIdentity(k.certBlob), 'bad_request', /ssh-agent refused to remove/);
  });

  it('fail/the real agent refuses a cert whose signature does not verify', async () => {
    const k = certifiedKey('user4');
    // Flip a byte inside the CA signature (the blob's tail) but keep the structure intact.
    const broken = Buffer.from(k.certBlob);
    broken[broken.length - 5] ^= 0xff;
    await expectJitError(
      agent.addEd25519WithCert({ privateKey: k.privateKey, certificate: broken, comment: 'bad' }),
      'bad_request',
      /ssh-agent refused/,
    );
  });

  it('fail/a dead agent socket is unreachable quickly', async () => {
    const dead = new AgentClient(join(dir, 'gone.sock'));
    const t0 = Date.now();
    await expectJitError(dead.listIdentities(), 'unreachable');
    expect(Date.now() - t0).toBeLessThan(1_000);
    dead.close();
  });
});
