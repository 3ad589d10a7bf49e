/**
 * Live state: pending and unexpired requests, revocations the KRL must still list, bearer-token
 * hashes. It is a cache of what is live now; the audit log is the record (auto-issued grants and
 * revocations are rebuilt from it on start, see replay.ts).
 *
 * On disk: a snapshot in one lowdb JSON file plus a journal of the changes since
 * (state-journal.ts). A write appends one line with what changed, so its cost does not grow with
 * everyone else's pending requests; the snapshot is rewritten only once the journal outgrows it.
 *
 * - One instance per process (the data-dir lock enforces one process): two writers on one
 *   lowdb file lose updates.
 * - Changes apply to memory at once (JS runs one callback at a time, so each method is atomic)
 *   and are then written together: every change made while a write is in flight, or in the same
 *   turn of the event loop, shares the next write (group commit). A method resolves once a write
 *   containing its change is durable.
 * - lowdb's JSONFile renames without fsync, so a crash can leave an empty file; we plug our own
 *   adapter into Low that fsyncs the temp file and the directory.
 * - If a write fails the change stays in memory (and goes out with the next successful write),
 *   but the caller is told 'unavailable', since it is not yet durable.
 * - In memory, records live in Maps keyed by id: ids come from URLs, and a plain object keyed
 *   by '__proto__' or 'constructor' would misbehave.
 */
import { readFile } from 'node:fs/promises';
import { Low, type Adapter } from 'lowdb';
import { JitError } from '../errors.js';
import { errorCode, writeFileAtomic } from '../files.js';
import { compactGrant, expandGrant, type CompactGrant } from './grant-index.js';
import { JournalWriter, readJournal, TrackedMap, type JournalEntry } from './state-journal.js';
import {
  REQUEST_STATUSES,
  type CertRevocation,
  type ExpiredRequest,
  type KeyRevocation,
  type RevokedRequest,
  type RevocationMark,
  type PruneResult,
  type RequestFilter,
  type RequestRecord,
  type RequestStatus,
  type RevocationSnapshot,
  type StateStore,
  type TokenRecord,
} from './types.js';

const SCHEMA_VERSION = 1;

interface StateFile {
  version: number;
  /** Journal lines of this epoch follow this snapshot; older ones are already in it. */
  journalEpoch?: number;
  krlVersion: number;
  requests: RequestRecord[];
  revocations: CertRevocation[];
  revokedKeys: KeyRevocation[];
  tokens: Array<TokenRecord & { hash: string }>;
}

const emptyState = (): StateFile => ({ version: SCHEMA_VERSION, krlVersion: 0, requests: [], revocations: [], revokedKeys: [], tokens: [] });

/** lowdb adapter: compact JSON, replaced atomically and durably. */
class DurableJsonFile implements Adapter<StateFile> {
  constructor(private readonly file: string) {}

  async read(): Promise<StateFile | null> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (e) {
      if (errorCode(e) === 'ENOENT') return null;
      throw new JitError('unavailable', `state file not readable: ${errorCode(e)}`, { cause: e });
    }
    this.lastBytes = Buffer.byteLength(text);
    try {
      return JSON.parse(text) as StateFile;
    } catch (e) {
      throw new JitError('internal', `state file ${this.file} is not valid JSON; restore it from a backup or move it aside`, { cause: e });
    }
  }

  /** Size of the last snapshot written, to know when the journal has outgrown it. */
  lastBytes = 0;

  async write(data: StateFile): Promise<void> {
    const text = JSON.stringify(data);
    await writeFileAtomic(this.file, text);
    this.lastBytes = Buffer.byteLength(text);
  }
}

/** The journal is folded into a new snapshot once it is larger than this and than the snapshot. */
const MIN_COMPACT_BYTES = 256 * 1024;

export const journalFileOf = (stateFile: string) => stateFile.replace(/\.json$/, '') + '.journal';

export interface StateOptions {
  clock?: () => Date;
  /** How long finished requests stay visible after they stop mattering. Default 3600 s. */
  requestGraceSec?: number;
  /**
   * How long a revoked certificate stays in the KRL after its validBefore. Default 300 s: a host
   * whose clock runs behind the CA's still accepts a cert the CA thinks expired.
   */
  krlGraceSec?: number;
  /** Called at the start of every prune(nowSec), e.g. so a cache of the audit replay drops what expired too. */
  onPrune?: (nowSec: number) => void;
}

export interface OpenedState extends StateStore {
  /** Completed file writes, for metrics and for tests of write coalescing. */
  readonly stats: { writes: number; snapshots: number };
  /** Repairs made while opening (a torn journal line dropped), for the daemon to log. */
  readonly warnings: readonly string[];
  /** For openStore: what the audit log says the KRL must list (see the method). */
  restoreRevocations(certs: readonly CertRevocation[], keys: readonly KeyRevocation[], krlFloor: number): Promise<boolean>;
  /**
   * For openStore: indexes a grant as the audit log describes it (the replay at start, then
   * every committed `issue` record), so the index always agrees with the log's head. The object
   * is kept as it is (no copy); a persisted record of the same id wins.
   */
  adoptGrant(g: CompactGrant): void;
  /**
   * For the start-up snapshot: every grant still valid at nowSec, compact (objects are never
   * mutated once indexed). In-memory grants expired by then are dropped on the way, as prune()
   * would: a store nobody prunes (a bulk import) stays the size of its live window.
   */
  liveGrants(nowSec: number): CompactGrant[];
}

const STATUSES: ReadonlySet<RequestStatus> = new Set(REQUEST_STATUSES);
const TOKEN_HASH = /^[0-9a-f]{64}$/;

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (e: unknown) => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

class LowdbState implements OpenedState {
  readonly stats = { writes: 0, snapshots: 0 };
  readonly warnings: string[] = [];
  /** Requests the state file holds (pending ones, approved grants, anything updated). */
  private readonly requests = new TrackedMap<RequestRecord>();
  /** Auto-issued grants, in memory only and compact (see recordIssued). */
  private readonly grants = new Map<string, CompactGrant>();
  /** Keyed by `${caFingerprint} ${serial}`: serials are unique per CA key. */
  private readonly revocations = new TrackedMap<CertRevocation>();
  private readonly revokedKeys = new TrackedMap<KeyRevocation>();
  private readonly tokens = new TrackedMap<TokenRecord>();
  private krl = 0;
  private writtenKrl = 0;
  private epoch: number;
  private journalBytes = 0;
  /** Next write rewrites the snapshot: none on disk yet, a journal to fold in, or a failed write. */
  private needSnapshot: boolean;
  /** The write that will carry changes made now; it has not started yet. */
  private nextWrite: Deferred | undefined;
  private inFlight: Promise<void> | undefined;
  private closed = false;
  private readonly requestGraceSec: number;
  private readonly krlGraceSec: number;
  private readonly onPrune: ((nowSec: number) => void) | undefined;

  constructor(
    private readonly db: Low<StateFile>,
    private readonly adapter: DurableJsonFile,
    private readonly journal: JournalWriter,
    journalRead: { entries: JournalEntry[]; bytes: number; warnings: string[] },
    snapshotExists: boolean,
    private readonly clock: () => Date,
    opts: StateOptions,
  ) {
    this.requestGraceSec = opts.requestGraceSec ?? 3600;
    this.krlGraceSec = opts.krlGraceSec ?? KRL_GRACE_SEC;
    this.onPrune = opts.onPrune;
    const data = db.data;
    if (data.version !== SCHEMA_VERSION) {
      throw new JitError('internal', `state file has schema version ${String(data.version)}; this jit-sshd reads ${SCHEMA_VERSION}`);
    }
    for (const r of data.requests ?? []) this.setRequest(r);
    for (const r of data.revocations ?? []) this.revocations.set(revocationKey(r), r);
    for (const { fingerprint, publicKey, revokedAt, by, reason } of data.revokedKeys ?? []) {
      this.revokedKeys.set(fingerprint, { fingerprint, publicKey, revokedAt, by, reason });
    }
    for (const { hash, ...t } of data.tokens ?? []) this.tokens.set(hash, t);
    this.krl = data.krlVersion ?? 0;
    this.epoch = data.journalEpoch ?? 0;
    for (const e of journalRead.entries) this.applyJournal(e);
    this.warnings.push(...journalRead.warnings);
    this.writtenKrl = this.krl;
    this.journalBytes = journalRead.bytes;
    this.needSnapshot = !snapshotExists || journalRead.bytes > 0;
    // From here on, every change is tracked for the journal.
    for (const m of [this.requests, this.revocations, this.revokedKeys, this.tokens] as TrackedMap<unknown>[]) m.takeChanges();
  }

  private applyJournal(e: JournalEntry): void {
    for (const [id, r] of e.req ?? []) {
      if (r) this.setRequest(r);
      else this.deleteRequest(id);
    }
    const apply = <V>(map: TrackedMap<V>, changes: Array<[string, V | null]> | undefined) => {
      for (const [k, v] of changes ?? []) {
        if (v) map.set(k, v);
        else map.delete(k);
      }
    };
    apply(this.revocations, e.rev);
    apply(this.revokedKeys, e.key);
    apply(this.tokens, e.tok);
    if (typeof e.krl === 'number' && e.krl > this.krl) this.krl = e.krl;
  }

  /** At open: fold a leftover journal (and a torn tail) into a fresh snapshot before appending. */
  async compactIfNeeded(): Promise<void> {
    if (this.needSnapshot && this.journalBytes > 0) await this.persist();
  }

  // ---- requests

  /** Per-user index: counting one user's grants must not scan everyone's. */
  private readonly byUser = new Map<string, Set<string>>();

  /**
   * Per user: how many unexpired issued grants they hold as of `asOf`, valid until the first of
   * them expires (`nextExpiry`). Issuing adds to it; anything else about the user drops it.
   * The limit check runs on every issuance: it must not walk all of a user's live certificates.
   */
  private readonly activeCounts = new Map<string, { asOf: number; count: number; nextExpiry: number }>();

  private indexUser(id: string, user: string): void {
    this.activeCounts.delete(user);
    const old = this.requests.get(id) ?? this.grants.get(id);
    if (old && old.user !== user) this.unindexUser(id, old.user);
    let ids = this.byUser.get(user);
    if (!ids) this.byUser.set(user, (ids = new Set()));
    ids.add(id);
  }

  private unindexUser(id: string, user: string): void {
    this.activeCounts.delete(user);
    const ids = this.byUser.get(user);
    ids?.delete(id);
    if (ids?.size === 0) this.byUser.delete(user);
  }

  /** Stores a persisted request; it replaces an in-memory grant of the same id. */
  private setRequest(r: RequestRecord): void {
    this.indexUser(r.id, r.user);
    this.grants.delete(r.id);
    this.requests.set(r.id, r);
  }

  private deleteRequest(id: string): void {
    const r = this.requests.get(id) ?? this.grants.get(id);
    if (!r) return;
    this.requests.delete(id);
    this.grants.delete(id);
    this.unindexUser(id, r.user);
  }

  /** Persisted records as they are, in-memory grants expanded (fresh objects). */
  private *candidates(user: string | undefined): Iterable<{ rec: RequestRecord; own: boolean }> {
    const ids = user === undefined ? [...this.requests.keys(), ...this.grants.keys()] : (this.byUser.get(user) ?? []);
    for (const id of ids) {
      const r = this.requests.get(id);
      if (r) {
        yield { rec: r, own: true };
        continue;
      }
      const g = this.grants.get(id);
      if (g) yield { rec: expandGrant(g), own: false };
    }
  }

  private get(id: string): RequestRecord | undefined {
    const g = this.grants.get(id);
    return this.requests.get(id) ?? (g && expandGrant(g));
  }

  async putRequest(r: RequestRecord): Promise<void> {
    this.assertOpen();
    if (typeof r.id !== 'string' || r.id === '') throw new JitError('internal', 'request needs an id');
    if (!STATUSES.has(r.status)) throw new JitError('internal', `unknown request status ${String(r.status)}`);
    this.setRequest(structuredClone(r));
    return this.persist();
  }

  recordIssued(r: RequestRecord): void {
    this.assertOpen();
    if (r.status !== 'issued' && r.status !== 'revoked') throw new JitError('internal', 'recordIssued takes an issued request');
    const indexed = this.grants.get(r.id);
    if (indexed && indexed.status === r.status) {
      // Already indexed from its audit record (see adoptGrant): only the rule's live notification
      // settings are not in the log.
      if (r.webhook !== undefined) this.grants.set(r.id, { ...indexed, webhook: r.webhook });
      return;
    }
    const g = compactGrant(r);
    if (!g) throw new JitError('internal', 'recordIssued takes an issued request');
    this.adoptGrant(g);
  }

  adoptGrant(g: CompactGrant): void {
    this.assertOpen();
    if (this.requests.has(g.id)) return; // a persisted record wins
    const counted = this.grants.has(g.id) ? undefined : this.activeCounts.get(g.user);
    this.indexUser(g.id, g.user);
    this.grants.set(g.id, g);
    if (counted) {
      if (g.status === 'issued' && g.validBefore > counted.asOf) {
        counted.count++;
        counted.nextExpiry = Math.min(counted.nextExpiry, g.validBefore);
      }
      this.activeCounts.set(g.user, counted);
    }
  }

  liveGrants(nowSec: number): CompactGrant[] {
    const out: CompactGrant[] = [];
    for (const [id, g] of this.grants) {
      if (g.validBefore > nowSec) out.push(g);
      else this.deleteRequest(id); // expired: of no further use, as prune() would decide
    }
    // Approved grants live in the state file; the snapshot lists them too, as a full replay would.
    for (const r of this.requests.values()) {
      const g = r.cert && r.cert.validBefore > nowSec ? compactGrant(r) : undefined;
      if (g) out.push(g);
    }
    return out;
  }

  async getRequest(id: string): Promise<RequestRecord | undefined> {
    const r = this.requests.get(id);
    if (r) return structuredClone(r);
    const g = this.grants.get(id);
    return g && expandGrant(g);
  }

  async listRequests(filter: RequestFilter = {}): Promise<RequestRecord[]> {
    const statuses = filter.status === undefined ? undefined : new Set<RequestStatus>(typeof filter.status === 'string' ? [filter.status] : filter.status);
    const out: RequestRecord[] = [];
    for (const { rec: r, own } of this.candidates(filter.user)) {
      if (filter.user !== undefined && r.user !== filter.user) continue;
      if (filter.target !== undefined && r.target !== filter.target) continue;
      if (statuses && !statuses.has(r.status)) continue;
      if (filter.serial !== undefined && r.cert?.serial !== filter.serial) continue;
      if (filter.keyFingerprint !== undefined && r.keyFingerprint !== filter.keyFingerprint) continue;
      out.push(own ? structuredClone(r) : r);
    }
    return out.sort((a, b) => b.createdAt - a.createdAt);
  }

  async updateRequest(id: string, mutate: (r: RequestRecord) => void): Promise<RequestRecord> {
    this.assertOpen();
    const current = this.get(id);
    if (!current) throw new JitError('not_found', `no request ${id}`);
    const next = structuredClone(current);
    mutate(next); // a throw here leaves the stored record untouched
    if (next.id !== id) throw new JitError('internal', 'updateRequest may not change the id');
    if (!STATUSES.has(next.status)) throw new JitError('internal', `unknown request status ${String(next.status)}`);
    this.setRequest(next);
    await this.persist();
    return structuredClone(next);
  }

  async countActiveGrants(user: string, nowSec: number): Promise<number> {
    const cached = this.activeCounts.get(user);
    if (cached && nowSec >= cached.asOf && nowSec < cached.nextExpiry) return cached.count;
    let n = 0;
    let nextExpiry = Infinity;
    for (const id of this.byUser.get(user) ?? []) {
      const r = this.requests.get(id);
      const g = r ? undefined : this.grants.get(id);
      const validBefore = r ? r.cert?.validBefore : g?.validBefore;
      if ((r ?? g)?.status === 'issued' && validBefore !== undefined && validBefore > nowSec) {
        n++;
        nextExpiry = Math.min(nextExpiry, validBefore);
      }
    }
    this.activeCounts.set(user, { asOf: nowSec, count: n, nextExpiry });
    return n;
  }

  async countPending(user: string, nowMs: number): Promise<number> {
    let n = 0;
    for (const id of this.byUser.get(user) ?? []) {
      const r = this.requests.get(id);
      if (r?.status === 'pending' && r.expiresAt > nowMs) n++;
    }
    return n;
  }

  // ---- revocations

  async addRevocation(rev: CertRevocation): Promise<boolean> {
    this.assertOpen();
    if (!/^\d+$/.test(rev.serial)) throw new JitError('internal', `revocation serial must be a decimal string, got ${rev.serial}`);
    const key = revocationKey(rev);
    if (this.revocations.has(key)) return false;
    this.revocations.set(key, structuredClone(rev));
    this.bumpKrl();
    await this.persist();
    return true;
  }

  async addKeyRevocation(rev: KeyRevocation): Promise<boolean> {
    this.assertOpen();
    if (this.revokedKeys.has(rev.fingerprint)) return false;
    this.revokedKeys.set(rev.fingerprint, structuredClone(rev));
    this.bumpKrl();
    await this.persist();
    return true;
  }

  async removeKeyRevocation(fingerprint: string): Promise<boolean> {
    this.assertOpen();
    if (!this.revokedKeys.delete(fingerprint)) return false;
    this.bumpKrl();
    await this.persist();
    return true;
  }

  async keyRevocation(fingerprint: string): Promise<KeyRevocation | undefined> {
    const k = this.revokedKeys.get(fingerprint);
    return k && structuredClone(k);
  }

  async revokeGrants(ids: readonly string[], mark: RevocationMark): Promise<RequestRecord[]> {
    this.assertOpen();
    const changed: RequestRecord[] = [];
    let persisted = false;
    for (const id of new Set(ids)) {
      const r = this.requests.get(id);
      const g = r ? undefined : this.grants.get(id);
      const status = (r ?? g)?.status;
      if (status !== 'issued' && status !== 'pending') continue;
      this.activeCounts.delete((r ?? g)!.user);
      let rec: RequestRecord;
      if (r?.status === 'issued' || r?.status === 'pending') {
        const revoked: RevokedRequest = { ...r, status: 'revoked', revokedAt: mark.at, revokedBy: mark.by };
        this.requests.set(id, revoked);
        persisted = true;
        rec = structuredClone(revoked);
      } else if (g) {
        // Replaced, not changed in place: a start-up snapshot being written holds the old object.
        const revoked: CompactGrant = { ...g, status: 'revoked', revokedAt: mark.at, revokedBy: mark.by };
        this.grants.set(id, revoked);
        rec = expandGrant(revoked);
      } else continue;
      if (rec.cert) {
        const c = rec.cert;
        this.revocations.set(revocationKey(c), { serial: c.serial, caFingerprint: c.caFingerprint, validBefore: c.validBefore, revokedAt: mark.at, by: mark.by, reason: mark.reason });
      }
      changed.push(rec);
    }
    // One step per certificate, as if revoked one by one: the audit replay counts steps the same
    // way to find the version's floor after a lost state file (see replay.ts krlFloor).
    const added = changed.filter((r) => r.cert).length;
    if (added > 0) this.bumpKrl(added);
    // In-memory grants need no state write (their audit `revoke` records bring the mark back);
    // the KRL entries and persisted records do.
    if (persisted || changed.some((r) => r.cert)) await this.persist();
    return changed;
  }

  /**
   * Puts back what the audit log says the KRL must list (after a lost or restored state file):
   * certificate revocations are added, the key revocations become exactly `keys`, and the KRL
   * version is raised to at least `krlFloor`. One durable write, only if something changed.
   */
  async restoreRevocations(certs: readonly CertRevocation[], keys: readonly KeyRevocation[], krlFloor: number): Promise<boolean> {
    this.assertOpen();
    let changed = false;
    for (const c of certs) {
      if (this.revocations.has(revocationKey(c))) continue;
      this.revocations.set(revocationKey(c), structuredClone(c));
      changed = true;
    }
    const wanted = new Set(keys.map((k) => k.fingerprint));
    for (const fp of this.revokedKeys.keys()) {
      if (!wanted.has(fp)) {
        this.revokedKeys.delete(fp);
        changed = true;
      }
    }
    for (const k of keys) {
      if (this.revokedKeys.has(k.fingerprint)) continue;
      this.revokedKeys.set(k.fingerprint, structuredClone(k));
      changed = true;
    }
    if (this.krl < krlFloor) {
      this.krl = krlFloor;
      changed = true;
    }
    if (!changed) return false;
    this.bumpKrl();
    await this.persist();
    return true;
  }

  async listRevocations(nowSec: number): Promise<RevocationSnapshot> {
    return liveRevocations(this.krl, this.revocations.values(), this.revokedKeys.values(), nowSec - this.krlGraceSec);
  }

  async krlVersion(): Promise<number> {
    return this.krl;
  }

  /**
   * Never below the clock's seconds: if the state file is lost, versions still grow, so hosts
   * polling the KRL never see an older-looking one.
   */
  private bumpKrl(steps = 1): void {
    this.krl = Math.max(this.krl + steps, Math.floor(this.clock().getTime() / 1000));
  }

  // ---- tokens

  async putToken(hash: string, rec: TokenRecord): Promise<void> {
    this.assertOpen();
    // Refuses anything that is not a sha256 hex digest, so a raw token can never land on disk.
    if (!TOKEN_HASH.test(hash)) throw new JitError('internal', 'putToken takes the sha256 hex of a token, never the token');
    this.tokens.set(hash, structuredClone(rec));
    return this.persist();
  }

  async getToken(hash: string, nowMs: number): Promise<TokenRecord | undefined> {
    const t = this.tokens.get(hash);
    return t && t.expiresAt > nowMs ? structuredClone(t) : undefined;
  }

  async deleteToken(hash: string): Promise<void> {
    this.assertOpen();
    if (this.tokens.delete(hash)) await this.persist();
  }

  // ---- housekeeping

  /**
   * - pending past expiresAt → 'expired' (returned, for the caller to audit);
   * - issued/revoked requests: dropped requestGraceSec after cert.validBefore;
   *   denied/expired (and revoked-while-pending) ones: requestGraceSec after expiresAt;
   * - revocations: dropped krlGraceSec after the certificate (or key entry) expires, which
   *   bumps krlVersion since the KRL changes;
   * - tokens: dropped once expired.
   */
  async prune(nowSec: number): Promise<PruneResult> {
    this.assertOpen();
    this.onPrune?.(nowSec);
    const nowMs = nowSec * 1000;
    const result: PruneResult = { expired: [], removedRequests: 0, removedRevocations: 0, removedTokens: 0 };
    // An expired auto-issued grant is of no further use (the KRL keeps its own revocation
    // entries): drop it at once, so memory never grows with certificates already expired.
    for (const [id, g] of this.grants) {
      if (g.validBefore <= nowSec) {
        this.deleteRequest(id);
        result.removedRequests++;
      }
    }
    for (const [id, r] of this.requests) {
      if (r.status === 'pending' && r.expiresAt <= nowMs) {
        const expired: ExpiredRequest = { ...r, status: 'expired' };
        this.requests.set(id, expired);
        result.expired.push(structuredClone(expired));
        continue; // kept until a later prune, after the caller has audited the expiry
      }
      const endSec = r.cert ? r.cert.validBefore : r.expiresAt / 1000;
      if (r.status !== 'pending' && endSec + this.requestGraceSec <= nowSec) {
        this.deleteRequest(id);
        result.removedRequests++;
      }
    }
    const krlCutoff = nowSec - this.krlGraceSec;
    for (const [key, r] of this.revocations) {
      if (r.validBefore <= krlCutoff) {
        this.revocations.delete(key);
        result.removedRevocations++;
      }
    }
    if (result.removedRevocations > 0) this.bumpKrl();
    for (const [hash, t] of this.tokens) {
      if (t.expiresAt <= nowMs) {
        this.tokens.delete(hash);
        result.removedTokens++;
      }
    }
    if (result.expired.length + result.removedRequests + result.removedRevocations + result.removedTokens > 0) {
      // (Dropping in-memory grants alone needs no write; it is harmless to write anyway.)
      try {
        await this.persist();
      } catch (e) {
        // The caller audits `expired` only on success; put them back so the next prune
        // reports them again instead of expiring them silently.
        for (const r of result.expired) {
          const cur = this.requests.get(r.id);
          if (cur?.status === 'expired') this.requests.set(r.id, { ...cur, status: 'pending' });
        }
        throw e;
      }
    }
    return result;
  }

  async flush(): Promise<void> {
    while (this.nextWrite || this.inFlight) {
      if (this.nextWrite) await this.nextWrite.promise;
      else await this.inFlight;
    }
  }

  async close(): Promise<void> {
    try {
      await this.flush();
      // Leave one tidy snapshot for offline readers and the next start.
      if (this.journalBytes > 0) {
        this.needSnapshot = true;
        await this.persist();
      }
    } finally {
      this.closed = true;
    }
  }

  // ---- writing

  private assertOpen(): void {
    if (this.closed) throw new JitError('unavailable', 'state store is closed');
  }

  /** Resolves after a write that started after this call is durable. */
  private persist(): Promise<void> {
    if (!this.nextWrite) {
      this.nextWrite = deferred();
      // setImmediate: every change of this turn of the event loop joins the write.
      if (!this.inFlight) setImmediate(() => this.startWrite());
    }
    return this.nextWrite.promise;
  }

  private startWrite(): void {
    const batch = this.nextWrite;
    if (!batch) return;
    this.nextWrite = undefined;
    this.inFlight = this.writeOnce(batch).finally(() => {
      this.inFlight = undefined;
      if (this.nextWrite) this.startWrite();
    });
  }

  /** Never rejects: the outcome goes to the batch's waiters. */
  private async writeOnce(batch: Deferred): Promise<void> {
    const entry: JournalEntry = { e: this.epoch };
    const add = <K extends 'req' | 'rev' | 'key' | 'tok'>(k: K, changes: JournalEntry[K]) => {
      if (changes && changes.length > 0) entry[k] = changes;
    };
    add('req', this.requests.takeChanges());
    add('rev', this.revocations.takeChanges());
    add('key', this.revokedKeys.takeChanges());
    add('tok', this.tokens.takeChanges());
    if (this.krl !== this.writtenKrl) entry.krl = this.krl;
    const krl = this.krl;
    try {
      if (this.needSnapshot || this.journalBytes > Math.max(MIN_COMPACT_BYTES, this.adapter.lastBytes)) {
        await this.writeSnapshot();
      } else {
        const line = JSON.stringify(entry) + '\n';
        await this.journal.append(line);
        this.journalBytes += Buffer.byteLength(line);
      }
      this.writtenKrl = krl;
      this.stats.writes++;
      batch.resolve();
    } catch (e) {
      // The changes taken above are in memory only now; a whole snapshot carries them next time
      // (and cuts off whatever part of a journal line may have reached the disk).
      this.needSnapshot = true;
      batch.reject(new JitError('unavailable', `state not writable: ${errorCode(e)}`, { cause: e }));
    }
  }

  /** Snapshot with the next epoch, then empty the journal (its lines are now older than it). */
  private async writeSnapshot(): Promise<void> {
    const epoch = this.epoch + 1;
    this.db.data = this.snapshot(epoch);
    await this.db.write();
    this.epoch = epoch;
    await this.journal.truncate();
    this.journalBytes = 0;
    this.needSnapshot = false;
    this.stats.snapshots++;
  }

  private snapshot(epoch: number): StateFile {
    return {
      version: SCHEMA_VERSION,
      journalEpoch: epoch,
      krlVersion: this.krl,
      requests: [...this.requests.values()],
      revocations: [...this.revocations.values()],
      revokedKeys: [...this.revokedKeys.values()],
      tokens: [...this.tokens].map(([hash, t]) => ({ hash, ...t })),
    };
  }
}

const revocationKey = (r: Pick<CertRevocation, 'caFingerprint' | 'serial'>) => `${r.caFingerprint} ${r.serial}`;

/**
 * Default time a revoked certificate stays in the KRL after its validBefore: a host whose clock
 * runs behind the CA's still accepts a certificate the CA thinks expired.
 */
export const KRL_GRACE_SEC = 300;

function liveRevocations(
  krlVersion: number,
  certs: Iterable<CertRevocation>,
  keys: Iterable<KeyRevocation>,
  cutoff: number,
): RevocationSnapshot {
  return {
    krlVersion,
    certificates: [...certs].filter((r) => r.validBefore > cutoff).map((r) => structuredClone(r)),
    keys: [...keys].map((k) => structuredClone(k)),
  };
}

/**
 * The revocations of a state file without opening it for writing (no lock): the file is only
 * ever replaced whole, so reading it beside a running daemon is safe. For `jit-sshd krl`.
 */
export async function readRevocations(file: string, nowSec: number): Promise<RevocationSnapshot> {
  const data = (await new DurableJsonFile(file).read()) ?? emptyState();
  const revocations = new Map((data.revocations ?? []).map((r) => [revocationKey(r), r]));
  const keys = new Map((data.revokedKeys ?? []).map((k) => [k.fingerprint, k]));
  let krl = data.krlVersion ?? 0;
  // Changes since the snapshot (lines of the snapshot's epoch; a torn last line is ignored).
  for (const e of (await readJournal(journalFileOf(file), data.journalEpoch ?? 0)).entries) {
    for (const [k, v] of e.rev ?? []) v ? revocations.set(k, v) : revocations.delete(k);
    for (const [k, v] of e.key ?? []) v ? keys.set(k, v) : keys.delete(k);
    if (typeof e.krl === 'number') krl = Math.max(krl, e.krl);
  }
  return liveRevocations(krl, revocations.values(), keys.values(), nowSec - KRL_GRACE_SEC);
}

/** Opens (or starts empty) the state file and its journal. One per process. */
export async function openState(file: string, opts: StateOptions = {}): Promise<OpenedState> {
  const adapter = new DurableJsonFile(file);
  const db = new Low<StateFile>(adapter, emptyState());
  const existing = await adapter.read();
  if (existing) db.data = existing;
  const journalRead = await readJournal(journalFileOf(file), existing?.journalEpoch ?? 0).catch((e: unknown) => {
    throw new JitError('unavailable', `state journal not readable: ${errorCode(e)}`, { cause: e });
  });
  const state = new LowdbState(db, adapter, new JournalWriter(journalFileOf(file)), journalRead, existing !== null, opts.clock ?? (() => new Date()), opts);
  await state.compactIfNeeded();
  return state;
}
