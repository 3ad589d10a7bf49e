/**
 * The PKCS#11 backend: CA keys are generated inside a token (HSM, YubiHSM, a cloud HSM's
 * PKCS#11 library, SoftHSM) as non-extractable, sensitive key pairs, and every signature is a
 * C_Sign on the token. This process only ever holds public keys and object handles.
 *
 * A pool of sessions, all logged in (one C_Login logs in the whole application), lets
 * concurrent issuance sign in parallel as far as the token allows; C_Sign runs off the event
 * loop (pkcs11js's async calls use libuv's thread pool, which the audit log's file writes share:
 * more sessions than UV_THREADPOOL_SIZE − 2 lets a slow token starve them). When the token goes
 * away, the pool is dropped and the next signature reopens it: issuance resumes by itself.
 */
import { createHash, randomBytes } from 'node:crypto';
import type * as P11 from 'pkcs11js';
import { JitError } from '../errors.js';
import { ecdsaSigBlob } from '../ca/signer.js';
import { CURVES, decodeKeyBlob, fingerprintOf, publicKeyLine as lineOf } from '../ca/keys.js';
import { WireWriter } from '../ca/wire.js';
import type { CaKeyType } from '../policy/config-schema.js';
import { caUnavailable, checkedSigner } from './checked.js';
import { curveOfCaKeyType, ecBlob, ecParamsOf, rsaBlob } from './pkcs11-codec.js';
import type { CaSigner, HeldKey, KeyCustody, KeyLocation, ListedKey } from './types.js';

type Lib = typeof P11;
type Handle = Buffer;

export interface Pkcs11Settings {
  module: string;
  tokenLabel: string;
  /** Never logged, never in an error message. */
  pin: string;
  /** Label of the key objects jit-sshd creates and may adopt. */
  keyLabel: string;
  /** Sessions in the pool: how many signatures may run on the token at once. */
  sessions: number;
  /** Which CA these keys are for; only changes what messages tell the admin to run. */
  role?: 'user' | 'host';
}

// Mechanisms and key types of PKCS#11 3.0 that pkcs11js (a 2.40 binding) does not name.
const CKK_EC_EDWARDS = 0x40;
const CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055;
const CKM_EDDSA = 0x1057;

/** Results that mean the sessions (or the token behind them) are gone, not that the request was bad. */
const SESSION_GONE = new Set([
  'CKR_SESSION_HANDLE_INVALID',
  'CKR_SESSION_CLOSED',
  'CKR_DEVICE_REMOVED',
  'CKR_DEVICE_ERROR',
  'CKR_TOKEN_NOT_PRESENT',
  'CKR_USER_NOT_LOGGED_IN',
  'CKR_OBJECT_HANDLE_INVALID',
  'CKR_KEY_HANDLE_INVALID',
  'CKR_CRYPTOKI_NOT_INITIALIZED',
]);

/** 'CKR_PIN_INCORRECT' from a pkcs11js error; never the message text beyond that name. */
function ckr(e: unknown): string {
  const m = /CKR_[A-Z_]+/.exec(String((e as Error)?.message ?? e));
  return m ? m[0] : 'an error';
}

/** One loaded module per path: a library may be initialised only once per process. */
const modules = new Map<string, { lib: Lib; p11: P11.PKCS11; refs: number }>();

async function loadModule(path: string): Promise<{ lib: Lib; p11: P11.PKCS11 }> {
  const have = modules.get(path);
  if (have) {
    have.refs++;
    return have;
  }
  let lib: Lib;
  try {
    lib = (await import('pkcs11js')).default as unknown as Lib;
  } catch (e) {
    throw new JitError('invalid_config', `ca.backend pkcs11 needs the pkcs11js binding, which did not load: ${(e as Error).message.split('\n')[0]}`);
  }
  const p11 = new lib.PKCS11();
  try {
    p11.load(path);
  } catch (e) {
    throw new JitError('invalid_config', `ca.pkcs11.module: cannot load ${path}: ${(e as Error).message.split('\n')[0]}`);
  }
  try {
    // OS locking: the library must expect calls from libuv's worker threads at once.
    p11.C_Initialize({ flags: lib.CKF_OS_LOCKING_OK });
  } catch (e) {
    if (ckr(e) !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') {
      throw new JitError('invalid_config', `ca.pkcs11.module: ${path} failed to initialise (${ckr(e)})`);
    }
  }
  const entry = { lib, p11, refs: 1 };
  modules.set(path, entry);
  return entry;
}

function releaseModule(path: string): void {
  const m = modules.get(path);
  if (!m || --m.refs > 0) return;
  modules.delete(path);
  try {
    m.p11.C_Finalize();
  } catch {
    // finalising a module that lost its token is best effort
  }
}

/** A logged-in token and its session pool. */
class Token {
  private slot?: Handle;
  /** Admin work (find, generate, destroy) runs here, never on a session a signature may be using. */
  private admin?: Handle;
  private free: Handle[] = [];
  private all: Handle[] = [];
  /** Requests waiting for a free session; undefined tells them the pool was dropped: start over. */
  private waiting: ((s: Handle | undefined) => void)[] = [];
  private handles = new Map<string, Handle>();
  private closed = false;
  private everOpened = false;

  constructor(
    readonly lib: Lib,
    readonly p11: P11.PKCS11,
    private readonly s: Pkcs11Settings,
  ) {}

  get name(): string {
    return `token "${this.s.tokenLabel}"`;
  }

  /** Finds the token, opens the sessions and logs in. Throws invalid_config naming the problem. */
  open(): void {
    const { lib, p11, s } = this;
    let slots: Handle[];
    try {
      slots = p11.C_GetSlotList(true);
    } catch (e) {
      throw new JitError('invalid_config', `ca.pkcs11.module: ${s.module} cannot list its tokens (${ckr(e)})`);
    }
    const labels: string[] = [];
    this.slot = undefined;
    for (const slot of slots) {
      const label = p11.C_GetTokenInfo(slot).label.trim();
      labels.push(label);
      if (label === s.tokenLabel) {
        this.slot = slot;
        break;
      }
    }
    if (!this.slot) {
      throw new JitError('invalid_config', `ca.pkcs11.tokenLabel: no token labelled "${s.tokenLabel}" in ${s.module} (tokens present: ${labels.map((l) => `"${l}"`).join(', ') || 'none'})`);
    }
    const sessions: Handle[] = [];
    try {
      for (let i = 0; i <= s.sessions; i++) sessions.push(p11.C_OpenSession(this.slot, lib.CKF_SERIAL_SESSION | lib.CKF_RW_SESSION));
      try {
        p11.C_Login(sessions[0], lib.CKU_USER, s.pin);
      } catch (e) {
        const code = ckr(e);
        if (code !== 'CKR_USER_ALREADY_LOGGED_IN') {
          const why =
            code === 'CKR_PIN_INCORRECT' ? 'refused the PIN' : code === 'CKR_PIN_LOCKED' ? 'has locked its user PIN (too many wrong PINs)' : `refused the login (${code})`;
          throw new JitError('invalid_config', `ca.pkcs11: ${this.name} ${why}; check ca.pkcs11.pinFile or JITSSHD_PKCS11_PIN`);
        }
      }
    } catch (e) {
      for (const h of sessions) this.closeSession(h);
      if (e instanceof JitError) throw e;
      throw new JitError('invalid_config', `ca.pkcs11: cannot open a session on ${this.name} (${ckr(e)})`);
    }
    this.admin = sessions[0];
    this.everOpened = true;
    this.all = sessions.slice(1);
    this.free = [...this.all];
  }

  /** Runs fn on a session of its own; reopens the pool first if it was dropped. */
  async withSession<T>(fn: (session: Handle) => T | Promise<T>): Promise<T> {
    let session: Handle | undefined;
    while (!session) {
      if (this.closed) throw new JitError('ca_unavailable', `${this.name} is closed`);
      if (!this.admin) this.reopen();
      session = this.free.pop() ?? (await new Promise<Handle | undefined>((resolve) => this.waiting.push(resolve)));
    }
    try {
      return await fn(session);
    } finally {
      if (this.all.includes(session)) {
        const next = this.waiting.shift();
        if (next) next(session);
        else this.free.push(session);
      }
    }
  }

  /** Synchronous use of one session, for admin work (find, generate, destroy) outside the pool's queue. */
  withAdminSession<T>(fn: (session: Handle) => T): T {
    // At start a missing token is a configuration error; once it has worked, it is an outage.
    if (!this.admin) {
      if (this.everOpened) this.reopen();
      else this.open();
    }
    try {
      return fn(this.admin!);
    } catch (e) {
      if (e instanceof JitError) throw e;
      const code = ckr(e);
      if (SESSION_GONE.has(code)) this.drop();
      throw new JitError(this.everOpened && SESSION_GONE.has(code) ? 'ca_unavailable' : 'invalid_config', `${this.name}: ${code}`);
    }
  }

  /** open() is synchronous, so concurrent requests cannot race to reopen: the first one does it. */
  private reopen(): void {
    try {
      this.open();
    } catch (e) {
      throw new JitError('ca_unavailable', 'the CA key cannot be reached right now; try again shortly', {
        cause: new Error(`${this.name} is unavailable: ${e instanceof JitError ? e.message : ckr(e)}`),
      });
    }
  }

  /** Forgets sessions and handles after the token went away; waiters get a session when it reopens. */
  drop(): void {
    for (const h of [...(this.admin ? [this.admin] : []), ...this.all]) this.closeSession(h);
    this.admin = undefined;
    this.all = [];
    this.free = [];
    this.handles.clear();
    const waiters = this.waiting;
    this.waiting = [];
    for (const w of waiters) w(undefined);
  }

  close(): void {
    this.closed = true;
    this.drop();
  }

  private closeSession(h: Handle): void {
    try {
      this.p11.C_CloseSession(h);
    } catch {
      // already gone with the token
    }
  }

  /** The object handle of a key by class + label + CKA_ID (handles are valid in every session). */
  find(session: Handle, cls: number, label: string, id: Buffer): Handle | undefined {
    const key = `${cls}:${label}:${id.toString('hex')}`;
    const cached = this.handles.get(key);
    if (cached) return cached;
    const { lib, p11 } = this;
    p11.C_FindObjectsInit(session, [
      { type: lib.CKA_CLASS, value: cls },
      { type: lib.CKA_LABEL, value: label },
      { type: lib.CKA_ID, value: id },
    ]);
    const found = p11.C_FindObjects(session, 2);
    p11.C_FindObjectsFinal(session);
    if (found.length > 1) throw new JitError('invalid_config', `${this.name} holds more than one key object labelled "${label}" with id ${id.toString('hex')}`);
    if (found.length === 1) this.handles.set(key, found[0]);
    return found[0];
  }

  findAll(session: Handle, cls: number): Handle[] {
    const { lib, p11 } = this;
    p11.C_FindObjectsInit(session, [{ type: lib.CKA_CLASS, value: cls }]);
    const out: Handle[] = [];
    for (;;) {
      const batch = p11.C_FindObjects(session, 64);
      out.push(...batch);
      if (batch.length < 64) break;
    }
    p11.C_FindObjectsFinal(session);
    return out;
  }
}

/** The SSH public-key blob of a token public key object. */
function publicBlobOf(t: Token, session: Handle, pub: Handle): Buffer {
  const { lib, p11 } = t;
  const [kt] = p11.C_GetAttributeValue(session, pub, [{ type: lib.CKA_KEY_TYPE }]);
  const raw = kt.value as Buffer;
  // CK_ULONG in host order: 8 bytes on 64-bit Linux, 4 elsewhere.
  const keyType = raw.length === 8 ? Number(raw.readBigUInt64LE()) : raw.readUInt32LE();
  if (keyType === lib.CKK_RSA) {
    const [n, e] = p11.C_GetAttributeValue(session, pub, [{ type: lib.CKA_MODULUS }, { type: lib.CKA_PUBLIC_EXPONENT }]);
    return rsaBlob(n.value as Buffer, e.value as Buffer);
  }
  if (keyType === lib.CKK_EC || keyType === CKK_EC_EDWARDS) {
    const [params, point] = p11.C_GetAttributeValue(session, pub, [{ type: lib.CKA_EC_PARAMS }, { type: lib.CKA_EC_POINT }]);
    return ecBlob(params.value as Buffer, point.value as Buffer);
  }
  throw new JitError('invalid_config', `${t.name}: key type ${keyType} cannot be an SSH CA key`);
}

const bool = (v: unknown): boolean => Buffer.isBuffer(v) ? v[0] !== 0 : Boolean(v);

/** Why a private key object must not hold a CA key, or undefined when it is fit. */
function unfitReason(t: Token, session: Handle, priv: Handle): string | undefined {
  const { lib, p11 } = t;
  const [extractable, sensitive] = p11.C_GetAttributeValue(session, priv, [{ type: lib.CKA_EXTRACTABLE }, { type: lib.CKA_SENSITIVE }]);
  if (bool(extractable.value)) return 'is extractable (CKA_EXTRACTABLE true)';
  if (!bool(sensitive.value)) return 'is not sensitive (CKA_SENSITIVE false)';
  return undefined;
}

const rotateCommand = (s: Pkcs11Settings): string => (s.role === 'host' ? 'jit-sshd ca rotate --type host' : 'jit-sshd ca rotate');

function tokenRef(location: KeyLocation, t: Token, s: Pkcs11Settings): { label: string; id: Buffer } {
  if (!('pkcs11' in location)) {
    const what = s.role === 'host' ? 'host CA key' : 'CA key';
    throw new JitError('invalid_config', `the ${what} is not in a token, but ca.backend is pkcs11: run ${rotateCommand(s)} to make one in ${t.name} (the old key stays trusted until retired)`);
  }
  return { label: location.pkcs11.label, id: Buffer.from(location.pkcs11.id, 'hex') };
}

/** The token's raw signature → SSH signature blob, per key type. */
function signWith(t: Token, keyType: string, priv: Handle, session: Handle, data: Buffer): Promise<Buffer> {
  const { lib, p11 } = t;
  const out = Buffer.alloc(1024);
  if (keyType === 'ssh-ed25519') {
    p11.C_SignInit(session, { mechanism: CKM_EDDSA }, priv);
    return p11.C_SignAsync(session, data, out).then((sig) => new WireWriter().string('ssh-ed25519').string(sig).toBuffer());
  }
  if (keyType === 'ssh-rsa') {
    p11.C_SignInit(session, { mechanism: lib.CKM_SHA512_RSA_PKCS }, priv);
    return p11.C_SignAsync(session, data, out).then((sig) => new WireWriter().string('rsa-sha2-512').string(sig).toBuffer());
  }
  const curve = keyType.slice('ecdsa-sha2-'.length) as keyof typeof CURVES;
  // CKM_ECDSA signs a digest; hashing here is public computation and every token supports it.
  const digest = createHash(CURVES[curve].hash).update(data).digest();
  p11.C_SignInit(session, { mechanism: lib.CKM_ECDSA }, priv);
  return p11.C_SignAsync(session, digest, out).then((sig) => ecdsaSigBlob(keyType, sig));
}

/**
 * One logged-in token per module and token label, shared by the user and the host CA custody:
 * `sessions` bounds the signatures on the token at once, whichever CA asks.
 */
const tokens = new Map<string, { t: Token; refs: number }>();

function acquireToken(lib: Lib, p11: P11.PKCS11, s: Pkcs11Settings): Token {
  const key = `${s.module}\0${s.tokenLabel}`;
  const have = tokens.get(key);
  if (have) {
    have.refs++;
    return have.t;
  }
  const t = new Token(lib, p11, s);
  t.open();
  tokens.set(key, { t, refs: 1 });
  return t;
}

function releaseToken(s: Pkcs11Settings): void {
  const key = `${s.module}\0${s.tokenLabel}`;
  const have = tokens.get(key);
  if (!have || --have.refs > 0) return;
  tokens.delete(key);
  have.t.close();
}

export async function pkcs11Custody(s: Pkcs11Settings): Promise<KeyCustody> {
  const { lib, p11 } = await loadModule(s.module);
  let t: Token;
  try {
    t = acquireToken(lib, p11, s);
  } catch (e) {
    releaseModule(s.module);
    throw e;
  }
  let closed = false;

  const held = (session: Handle, label: string, id: Buffer): HeldKey & { fit?: string } => {
    const pub = t.find(session, lib.CKO_PUBLIC_KEY, label, id);
    if (!pub) throw new JitError('invalid_config', `${t.name}: the key labelled "${label}" with id ${id.toString('hex')} has no public key object`);
    const blob = publicBlobOf(t, session, pub);
    return { location: { pkcs11: { label, id: id.toString('hex') } }, publicKeyLine: lineOf(blob, label), fingerprint: fingerprintOf(blob) };
  };

  const list = (): ListedKey[] =>
    t.withAdminSession((session) => {
      const out: ListedKey[] = [];
      for (const priv of t.findAll(session, lib.CKO_PRIVATE_KEY)) {
        const [label, id] = p11.C_GetAttributeValue(session, priv, [{ type: lib.CKA_LABEL }, { type: lib.CKA_ID }]);
        const labelText = String((label.value as Buffer | undefined)?.toString('utf8') ?? '');
        const idBuf = (id.value as Buffer | undefined) ?? Buffer.alloc(0);
        try {
          const k = held(session, labelText, idBuf);
          const unfit = unfitReason(t, session, priv);
          out.push({ ...k, note: `label "${labelText}" id ${idBuf.toString('hex')}${unfit ? `; ${unfit}: not usable as a CA key` : ''}` });
        } catch (e) {
          if (!(e instanceof JitError)) throw e;
          // a key we cannot read (no public object, another algorithm) is not a CA key candidate
        }
      }
      return out;
    });

  return {
    backend: 'pkcs11',
    create(type: CaKeyType): HeldKey {
      const id = randomBytes(8);
      const common: P11.Attribute[] = [
        { type: lib.CKA_TOKEN, value: true },
        { type: lib.CKA_LABEL, value: s.keyLabel },
        { type: lib.CKA_ID, value: id },
      ];
      const priv: P11.Attribute[] = [
        ...common,
        { type: lib.CKA_PRIVATE, value: true },
        { type: lib.CKA_SENSITIVE, value: true },
        { type: lib.CKA_EXTRACTABLE, value: false },
        { type: lib.CKA_SIGN, value: true },
      ];
      const pub: P11.Attribute[] = [...common, { type: lib.CKA_PRIVATE, value: false }, { type: lib.CKA_VERIFY, value: true }];
      let mechanism: number;
      if (type === 'rsa') {
        mechanism = lib.CKM_RSA_PKCS_KEY_PAIR_GEN;
        pub.push({ type: lib.CKA_MODULUS_BITS, value: 3072 }, { type: lib.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) });
      } else {
        const curve = curveOfCaKeyType(type);
        mechanism = curve === 'ed25519' ? CKM_EC_EDWARDS_KEY_PAIR_GEN : lib.CKM_EC_KEY_PAIR_GEN;
        pub.push({ type: lib.CKA_EC_PARAMS, value: ecParamsOf(curve) });
      }
      return t.withAdminSession((session) => {
        try {
          p11.C_GenerateKeyPair(session, { mechanism }, pub, priv);
        } catch (e) {
          throw new JitError('invalid_config', `${t.name} cannot generate a ${type} key (${ckr(e)}); choose another caKeyType`);
        }
        return held(session, s.keyLabel, id);
      });
    },
    configured: () => undefined,
    adoptable: () => list().filter((k) => 'pkcs11' in k.location && k.location.pkcs11.label === s.keyLabel && !k.note.includes('not usable')),
    open(location, fingerprint): CaSigner {
      const { label, id } = tokenRef(location, t, s);
      const where = `${t.name} (${s.module})`;
      const blob = t.withAdminSession((session) => {
        const priv = t.find(session, lib.CKO_PRIVATE_KEY, label, id);
        if (!priv) throw new JitError('invalid_config', `CA key ${fingerprint} (label "${label}", id ${id.toString('hex')}) is not in ${t.name}`);
        const unfit = unfitReason(t, session, priv);
        if (unfit) throw new JitError('invalid_config', `CA key ${fingerprint} in ${t.name} ${unfit}: generate CA keys inside the token (${rotateCommand(s)})`);
        const k = held(session, label, id);
        if (k.fingerprint !== fingerprint) throw new JitError('invalid_config', `the key labelled "${label}" id ${id.toString('hex')} in ${t.name} is ${k.fingerprint}, not ${fingerprint} as the keyring says`);
        return Buffer.from(k.publicKeyLine.split(' ')[1], 'base64');
      });
      const keyType = decodeKeyBlob(blob).type;
      return checkedSigner(blob, label, where, async (data) => {
        for (let attempt = 0; ; attempt++) {
          try {
            return await t.withSession((session) => {
              const priv = t.find(session, lib.CKO_PRIVATE_KEY, label, id);
              if (!priv) throw caUnavailable(fingerprint, `the key is no longer in ${t.name}`);
              return signWith(t, keyType, priv, session, data);
            });
          } catch (e) {
            if (e instanceof JitError) throw e.code === 'ca_unavailable' ? e : caUnavailable(fingerprint, e.message);
            const code = ckr(e);
            // Sessions gone (token re-inserted, HSM restarted): reopen once, then give up for this request.
            if (SESSION_GONE.has(code)) t.drop();
            if (SESSION_GONE.has(code) && attempt === 0) continue;
            throw caUnavailable(fingerprint, `${t.name} cannot sign (${code})`);
          }
        }
      });
    },
    list,
    destroy(location) {
      const { label, id } = tokenRef(location, t, s);
      t.withAdminSession((session) => {
        for (const cls of [lib.CKO_PRIVATE_KEY, lib.CKO_PUBLIC_KEY]) {
          const h = t.find(session, cls, label, id);
          if (h) p11.C_DestroyObject(session, h);
        }
      });
      t.drop();
    },
    async close() {
      if (closed) return;
      closed = true;
      releaseToken(s);
      releaseModule(s.module);
    },
  };
}
