/**
 * A small ssh-agent protocol client (draft-miller-ssh-agent, OpenSSH PROTOCOL.agent) over the
 * unix socket in SSH_AUTH_SOCK.
 *
 * Why not ssh2's agent client: it cannot add keys (no ADD_IDENTITY / ADD_ID_CONSTRAINED) and its
 * getIdentities drops certificates — and `jit-ssh login` exists to put a key + certificate into
 * the agent with a lifetime, and `status`/`done` must see those certificates again.
 */
import { createConnection, type Socket } from 'node:net';
import type { KeyObject } from 'node:crypto';
import { JitError } from '../errors.js';
import { WireReader, WireWriter, type WireFault } from '../ca/wire.js';

/** A reply from ssh-agent that is short or too long: bad_request, like its other faults here. */
const AGENT_REPLY: WireFault = { code: 'bad_request', what: 'ssh-agent reply' };

/** Message numbers from the agent protocol. */
const MSG = {
  FAILURE: 5,
  SUCCESS: 6,
  REQUEST_IDENTITIES: 11,
  IDENTITIES_ANSWER: 12,
  SIGN_REQUEST: 13,
  SIGN_RESPONSE: 14,
  ADD_IDENTITY: 17,
  REMOVE_IDENTITY: 18,
  ADD_ID_CONSTRAINED: 25,
} as const;

/**
 * Replies that also mean "no": OpenSSH and other agents send these for refused extension or
 * vendor requests, so treating them as a protocol error would hide the real answer.
 */
const FAILURE_REPLIES: ReadonlySet<number> = new Set([MSG.FAILURE, 28 /* EXTENSION_FAILURE */, 30, 102]);

const CONSTRAIN_LIFETIME = 1;
const CONSTRAIN_CONFIRM = 2;

/** SIGN_REQUEST flags: which hash an RSA key signs with (never SHA-1 here). */
export const SSH_AGENT_RSA_SHA2_256 = 2;
export const SSH_AGENT_RSA_SHA2_512 = 4;

const ED25519_CERT_TYPE = 'ssh-ed25519-cert-v01@openssh.com';

/** OpenSSH's own ceiling (AGENT_MAX_LEN); anything longer is a broken or hostile peer. */
const MAX_MESSAGE = 256 * 1024;

const DEFAULT_TIMEOUT_MS = 5_000;

export interface AgentIdentity {
  /** Public key or certificate blob (SSH wire format). */
  blob: Buffer;
  comment: string;
}

export interface AddEd25519WithCertOptions {
  privateKey: KeyObject;
  /** Certificate blob (the base64 field of a `-cert.pub` line, decoded). */
  certificate: Buffer;
  comment: string;
  /** The agent forgets the key after this many seconds; set it to the cert's remaining validity. */
  lifetimeSeconds?: number;
  /** Agent asks the user (ssh-askpass) before each use. */
  confirm?: boolean;
}

export interface AgentClientOptions {
  /** How long one request may wait for the agent's answer. */
  timeoutMs?: number;
}

interface Reply {
  type: number;
  body: Buffer;
}

interface Waiter {
  resolve: (reply: Reply) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class AgentClient {
  private readonly timeoutMs: number;
  private socket?: Socket;
  private connecting?: Promise<Socket>;
  private inbox: Buffer = Buffer.alloc(0);
  private waiter?: Waiter;
  /**
   * The agent protocol has no request ids: replies come back in order on one stream, so
   * requests are serialised and each waits for its own reply before the next is written.
   */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly socketPath: string,
    options: AgentClientOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** Every identity the agent holds, certificates included. */
  async listIdentities(): Promise<AgentIdentity[]> {
    const reply = await this.request(MSG.REQUEST_IDENTITIES, Buffer.alloc(0), 'list identities');
    expectType(reply, MSG.IDENTITIES_ANSWER, 'list identities');
    const r = new WireReader(reply.body, AGENT_REPLY);
    const count = r.uint32('identity count');
    const out: AgentIdentity[] = [];
    for (let i = 0; i < count; i++) {
      const blob = Buffer.from(r.string('identity key blob'));
      const comment = r.utf8('identity comment');
      out.push({ blob, comment });
    }
    r.end('identities answer');
    return out;
  }

  /** Signs `data` with the agent's key for `keyBlob`; returns the SSH signature blob. */
  async sign(keyBlob: Buffer, data: Buffer, flags = 0): Promise<Buffer> {
    const payload = new WireWriter().string(keyBlob).string(data).uint32(flags).toBuffer();
    const reply = await this.request(MSG.SIGN_REQUEST, payload, 'sign');
    expectType(reply, MSG.SIGN_RESPONSE, 'sign');
    const r = new WireReader(reply.body, AGENT_REPLY);
    const sig = Buffer.from(r.string('signature'));
    r.end('sign response');
    return sig;
  }

  /**
   * Adds an ed25519 private key together with its certificate, so `ssh` offers the
   * certificate. The body follows OpenSSH's sshkey_private_serialize for
   * ssh-ed25519-cert-v01: cert blob, public key, private||public, then comment.
   */
  async addEd25519WithCert(opts: AddEd25519WithCertOptions): Promise<void> {
    const { seed, pub } = ed25519Raw(opts.privateKey);
    checkCertMatchesKey(opts.certificate, pub);

    const w = new WireWriter()
      .string(ED25519_CERT_TYPE)
      .string(opts.certificate)
      .string(pub)
      .string(Buffer.concat([seed, pub]))
      .string(opts.comment);

    let constrained = false;
    if (opts.lifetimeSeconds !== undefined) {
      const s = opts.lifetimeSeconds;
      if (!Number.isInteger(s) || s < 1 || s > 0xffffffff) {
        throw new JitError('invalid_field', `agent key lifetime must be a whole number of seconds ≥ 1, got ${s}`);
      }
      w.byte(CONSTRAIN_LIFETIME).uint32(s);
      constrained = true;
    }
    if (opts.confirm) {
      w.byte(CONSTRAIN_CONFIRM);
      constrained = true;
    }

    const type = constrained ? MSG.ADD_ID_CONSTRAINED : MSG.ADD_IDENTITY;
    const reply = await this.request(type, w.toBuffer(), 'add key and certificate');
    expectType(reply, MSG.SUCCESS, 'add key and certificate');
  }

  /** Removes one identity (a plain key or a certificate blob, matched exactly). */
  async removeIdentity(keyBlob: Buffer): Promise<void> {
    const payload = new WireWriter().string(keyBlob).toBuffer();
    const reply = await this.request(MSG.REMOVE_IDENTITY, payload, 'remove identity');
    expectType(reply, MSG.SUCCESS, 'remove identity');
  }

  /** Closes the connection; a later request opens a new one. */
  close(): void {
    this.dropConnection(new JitError('unreachable', 'ssh-agent connection closed'));
  }

  private request(type: number, payload: Buffer, what: string): Promise<Reply> {
    const run = () => this.exchange(type, payload, what);
    const result = this.queue.then(run, run);
    // The queue only orders requests; one failure must not poison the ones behind it.
    this.queue = result.catch(() => undefined);
    return result;
  }

  private async exchange(type: number, payload: Buffer, what: string): Promise<Reply> {
    const frame = new WireWriter()
      .uint32(payload.length + 1)
      .byte(type)
      .raw(payload)
      .toBuffer();
    const deadline = Date.now() + this.timeoutMs;
    const socket = await this.connect(deadline);

    const reply = new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        // A late reply would be read as the answer to the next request: drop the stream.
        this.dropConnection(
          new JitError('unreachable', 'ssh-agent did not answer', {
            details: { socket: this.socketPath, request: what, timeoutMs: this.timeoutMs },
          }),
        );
      }, Math.max(0, deadline - Date.now()));
      this.waiter = { resolve, reject, timer };
    });
    socket.write(frame);
    this.deliver();
    return reply;
  }

  private connect(deadline: number): Promise<Socket> {
    if (this.socket) return Promise.resolve(this.socket);
    if (this.connecting) return this.connecting;

    this.connecting = new Promise<Socket>((resolve, reject) => {
      const socket = createConnection({ path: this.socketPath });
      const fail = (cause: unknown) => {
        clearTimeout(timer);
        socket.destroy();
        this.connecting = undefined;
        reject(
          new JitError('unreachable', `cannot reach ssh-agent at ${this.socketPath}`, {
            cause,
            details: { socket: this.socketPath },
          }),
        );
      };
      const timer = setTimeout(() => fail(new Error('connect timed out')), Math.max(0, deadline - Date.now()));
      socket.once('error', fail);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', fail);
        this.connecting = undefined;
        this.attach(socket);
        resolve(socket);
      });
    });
    return this.connecting;
  }

  private attach(socket: Socket): void {
    this.socket = socket;
    this.inbox = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      this.inbox = this.inbox.length === 0 ? chunk : Buffer.concat([this.inbox, chunk]);
      this.deliver();
    });
    socket.on('error', (err) => {
      if (this.socket === socket) {
        this.dropConnection(new JitError('unreachable', 'ssh-agent connection failed', { cause: err }));
      }
    });
    socket.on('close', () => {
      if (this.socket === socket) {
        this.dropConnection(new JitError('unreachable', 'ssh-agent closed the connection'));
      }
    });
  }

  /** Hands a complete reply frame, if one has arrived, to the waiting request. */
  private deliver(): void {
    if (this.inbox.length < 4) return;
    const len = this.inbox.readUInt32BE(0);
    if (len < 1 || len > MAX_MESSAGE) {
      this.dropConnection(new JitError('bad_request', `ssh-agent sent a malformed reply (length ${len})`));
      return;
    }
    if (this.inbox.length < 4 + len) return;
    const waiter = this.waiter;
    if (!waiter) {
      // Nobody asked: an agent that talks out of turn cannot be trusted to stay in step.
      this.dropConnection(new JitError('bad_request', 'ssh-agent sent an unexpected message'));
      return;
    }
    const type = this.inbox[4];
    const body = Buffer.from(this.inbox.subarray(5, 4 + len));
    this.inbox = this.inbox.subarray(4 + len);
    this.waiter = undefined;
    clearTimeout(waiter.timer);
    waiter.resolve({ type, body });
  }

  private dropConnection(err: Error): void {
    const socket = this.socket;
    this.socket = undefined;
    this.inbox = Buffer.alloc(0);
    socket?.destroy();
    const waiter = this.waiter;
    this.waiter = undefined;
    if (waiter) {
      clearTimeout(waiter.timer);
      waiter.reject(err);
    }
  }
}

/** The user's agent, when SSH_AUTH_SOCK points at one. */
export function agentFromEnv(env: NodeJS.ProcessEnv = process.env, options?: AgentClientOptions): AgentClient | undefined {
  const path = env.SSH_AUTH_SOCK;
  return path ? new AgentClient(path, options) : undefined;
}

function expectType(reply: Reply, want: number, what: string): void {
  if (reply.type === want) return;
  if (FAILURE_REPLIES.has(reply.type)) {
    throw new JitError('bad_request', `ssh-agent refused to ${what}`, { details: { reply: reply.type } });
  }
  throw new JitError('bad_request', `ssh-agent sent an unexpected reply (${reply.type}) to ${what}`, {
    details: { reply: reply.type },
  });
}

/** Raw 32-byte seed and public key; JWK is the one export node offers for both. */
function ed25519Raw(key: KeyObject): { seed: Buffer; pub: Buffer } {
  if (key.type !== 'private' || key.asymmetricKeyType !== 'ed25519') {
    throw new JitError('invalid_key', 'the agent key must be an ed25519 private key');
  }
  const jwk = key.export({ format: 'jwk' });
  if (typeof jwk.d !== 'string' || typeof jwk.x !== 'string') {
    throw new JitError('invalid_key', 'ed25519 key export lacks its private or public part');
  }
  const seed = Buffer.from(jwk.d, 'base64url');
  const pub = Buffer.from(jwk.x, 'base64url');
  if (seed.length !== 32 || pub.length !== 32) {
    throw new JitError('invalid_key', 'ed25519 key has the wrong length');
  }
  return { seed, pub };
}

/**
 * Refuses a certificate for another key before the agent sees it: the agent's own answer
 * would be a bare FAILURE, which tells the user nothing.
 */
function checkCertMatchesKey(cert: Buffer, pub: Buffer): void {
  const r = new WireReader(cert, { code: 'invalid_certificate', what: 'certificate' });
  const type = r.utf8('certificate type');
  if (type !== ED25519_CERT_TYPE) {
    throw new JitError('invalid_certificate', `expected an ${ED25519_CERT_TYPE} certificate, got ${type}`);
  }
  r.string('certificate nonce');
  const certPub = r.string('certificate public key');
  if (!certPub.equals(pub)) {
    throw new JitError('invalid_certificate', 'the certificate was issued for a different key');
  }
}
