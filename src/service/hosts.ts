/**
 * Host certificates: enrolment with a one-time token, renewal with the host's own key.
 *
 * The names a host certificate carries come from the policy only — the literal host names of
 * the target (never a `*` pattern), narrowed to the one name a token allows — never from the
 * request, so one host cannot obtain a certificate for another host's name. Every enrolment and
 * renewal, granted or refused, is an audit record, written before any certificate leaves.
 */
import { attachSignature, certificateBody, checkCertParams, parseCertificate, verifyCertificateSignature, type ParsedCert } from '../ca/cert.js';
import { parsePublicKey, publicKeyLine, type ParsedKey } from '../ca/keys.js';
import { verifySshSig } from '../ca/sshsig.js';
import type { CertParams } from '../ca/types.js';
import { JitError } from '../errors.js';
import type { Policy } from '../policy/schema.js';
import type { CaKeyring } from '../store/ca-keys.js';
import { claimHostToken, type HostTokenRecord } from '../store/host-tokens.js';
import { nowSeconds, type ServiceDeps } from './deps.js';

/** The SSHSIG namespace of a renewal signature (`ssh-keygen -Y sign -n jit-ssh-host`). */
export const HOST_SIG_NAMESPACE = 'jit-ssh-host';
/** The `user` a renewal challenge is issued for: renewal challenges never serve a user login. */
export const HOST_CHALLENGE_SUBJECT = 'host:renew';
export const MAX_HOST_KEYS = 16;
const HOST_KEY_ID = /^jit-ssh-host:([A-Za-z0-9][A-Za-z0-9._-]{0,62}):(ht_[0-9a-f]{12})$/;

export interface HostDeps extends ServiceDeps {
  hostCa: CaKeyring;
}

export interface HostCertificate {
  /** The host public key line the certificate is for, as sent. */
  publicKey: string;
  fingerprint: string;
  certificate: string;
  serial: string;
  validBefore: string;
}

export interface HostCertificates {
  target: string;
  principals: string[];
  certificates: HostCertificate[];
}

/** A target's host names a certificate may carry: literal names only (a pattern is no name). */
export function certifiableHostNames(policy: Policy, target: string): string[] {
  const t = policy.targets[target];
  if (!t) return [];
  return [...new Set(t.hosts.filter((h) => !/[*?[\]!]/.test(h)))];
}

/** The principals a token grants: the target's names, or the one the token names if listed. */
export function principalsForToken(policy: Policy, record: Pick<HostTokenRecord, 'target' | 'host'>): string[] {
  const names = certifiableHostNames(policy, record.target);
  if (record.host === undefined) return names;
  return names.includes(record.host) ? [record.host] : [];
}

/** Host keys from a request: valid, not DSA/security keys, not a CA key, no duplicates. */
export function parseHostKeys(deps: HostDeps, lines: readonly string[]): ParsedKey[] {
  if (!Array.isArray(lines) || lines.length === 0) throw new JitError('invalid_key', 'publicKeys: at least one host public key is required');
  if (lines.length > MAX_HOST_KEYS) throw new JitError('invalid_key', `publicKeys: at most ${MAX_HOST_KEYS} host keys`);
  const caKeys = [...deps.ca.trusted(), ...deps.hostCa.trusted()].map((s) => s.publicKeyBlob);
  const seen = new Set<string>();
  return lines.map((line, i) => {
    let key: ParsedKey;
    try {
      key = parsePublicKey(line, { minRsaBits: deps.config.minRsaBits, caKeys });
    } catch (e) {
      throw new JitError('invalid_key', `publicKeys[${i}]: ${(e as Error).message}`);
    }
    if (key.type.startsWith('sk-')) throw new JitError('invalid_key', `publicKeys[${i}]: a security-key type (${key.type}) is not a host key`);
    if (seen.has(key.fingerprint)) throw new JitError('invalid_key', `publicKeys[${i}]: duplicate of an earlier key (${key.fingerprint})`);
    seen.add(key.fingerprint);
    return key;
  });
}

async function signHostCerts(deps: HostDeps, keys: readonly ParsedKey[], target: string, enrolmentId: string, principals: string[]): Promise<HostCertificate[]> {
  deps.hostCa.refresh();
  const signer = deps.hostCa.active();
  const now = nowSeconds(deps.clock);
  const validBefore = now + deps.config.hostCertTtl;
  const out: HostCertificate[] = [];
  for (const key of keys) {
    const params: CertParams = {
      type: 'host',
      publicKey: key.blob,
      serial: await deps.serials.next(),
      keyId: `jit-ssh-host:${target}:${enrolmentId}`,
      principals,
      validAfter: BigInt(now - deps.config.backdate),
      validBefore: BigInt(validBefore),
      criticalOptions: {},
      extensions: {},
      nonce: deps.random(32),
    };
    checkCertParams(params);
    // The host CA key may sign elsewhere: body here, signature awaited, then assembled.
    const unsigned = certificateBody(params, signer.publicKeyBlob);
    const { line } = attachSignature(unsigned, await signer.sign(unsigned.body));
    out.push({
      publicKey: publicKeyLine(key.blob),
      fingerprint: key.fingerprint,
      certificate: line,
      serial: params.serial.toString(),
      validBefore: new Date(validBefore * 1000).toISOString(),
    });
  }
  return out;
}

function auditIssued(deps: HostDeps, type: 'host_enroll' | 'host_renew', r: HostCertificates, enrolment: string, sourceAddress?: string) {
  return deps.audit.append({
    type,
    target: r.target,
    enrolment,
    principals: r.principals,
    ca: deps.hostCa.active().fingerprint,
    certificates: r.certificates.map((c) => ({ serial: c.serial, keyFingerprint: c.fingerprint, validBefore: c.validBefore })),
    sourceAddress,
  });
}

/** POST /v1/hosts/enroll: a one-time token and the host's public keys → host certificates. */
export async function enrollHost(
  deps: HostDeps,
  body: { token: string; target: string; publicKeys: string[] },
  sourceAddress?: string,
): Promise<HostCertificates> {
  // Bad keys are the host's mistake: say so before the token is used up.
  const keys = parseHostKeys(deps, body.publicKeys);
  // So is a CA that cannot sign right now (token or agent away): 503 before the token is spent.
  deps.hostCa.refresh();
  deps.hostCa.active();
  const claim = claimHostToken(deps.config.dataDir, body.token, nowSeconds(deps.clock));
  // `enrolment` is the token's public id (a hash prefix), never the token.
  const refuse = async (code: 'unauthenticated' | 'forbidden', why: string, message: string, enrolment?: string): Promise<never> => {
    deps.log.warn({ target: body.target, enrolment, why, sourceAddress }, 'host enrolment refused');
    await deps.audit.append({ type: 'host_enroll_refused', target: body.target, enrolment, why, sourceAddress });
    throw new JitError(code, message);
  };
  if (!claim.ok) {
    const msg = claim.why === 'expired' ? 'enrolment token expired: ask the CA admin for a new one (jit-sshd host token)' : 'enrolment token is unknown or already used: ask the CA admin for a new one (jit-sshd host token)';
    return refuse('unauthenticated', claim.why, msg, claim.id);
  }
  const { record } = claim;
  if (record.target !== body.target) {
    return refuse('forbidden', 'wrong_target', `this enrolment token is for another target, not ${body.target}; it is now used up`, record.id);
  }
  const principals = principalsForToken(deps.policy(), record);
  if (principals.length === 0) {
    const what = record.host ? `host ${record.host} is not a literal host name of target ${record.target}` : `target ${record.target} lists no literal host names (patterns are never certified)`;
    return refuse('forbidden', 'no_host_names', `${what}; fix hosts: in the policy, then make a new token`, record.id);
  }
  const result: HostCertificates = { target: record.target, principals, certificates: await signHostCerts(deps, keys, record.target, record.id, principals) };
  await auditIssued(deps, 'host_enroll', result, record.id, sourceAddress);
  return result;
}

export interface Renewal {
  certificate: string;
  signature: string;
}

/** Checks one renewal: a current host certificate of ours, signed over the challenge by its key. */
function checkRenewal(deps: HostDeps, r: Renewal, i: number, challenge: string): { cert: ParsedCert; target: string; enrolment: string } {
  let cert: ParsedCert;
  try {
    cert = parseCertificate(r.certificate);
  } catch (e) {
    throw new JitError('invalid_certificate', `renewals[${i}].certificate: ${(e as Error).message}`);
  }
  const trusted = deps.hostCa.trusted().map((s) => s.publicKeyBlob);
  if (cert.certType !== 'host' || !trusted.some((k) => k.equals(cert.signatureKey)) || !verifyCertificateSignature(cert)) {
    throw new JitError('unauthenticated', `renewals[${i}]: not a host certificate of this CA; enrol with a token instead`);
  }
  const now = BigInt(nowSeconds(deps.clock));
  if (cert.validBefore <= now || cert.validAfter > now) {
    throw new JitError('unauthenticated', `renewals[${i}]: the host certificate is not valid now (expired?); enrol again with a new token`);
  }
  const id = HOST_KEY_ID.exec(cert.keyId);
  if (!id) throw new JitError('unauthenticated', `renewals[${i}]: not a jit-ssh host certificate`);
  try {
    verifySshSig(r.signature, Buffer.from(challenge, 'utf8'), { namespace: HOST_SIG_NAMESPACE, allowedKeys: [cert.publicKey] });
  } catch {
    throw new JitError('unauthenticated', `renewals[${i}]: the signature is not by the certified host key over the challenge (namespace ${HOST_SIG_NAMESPACE})`);
  }
  return { cert, target: id[1], enrolment: id[2] };
}

/**
 * POST /v1/hosts/renew: each renewal is a current host certificate plus an SSHSIG over the
 * challenge by that certificate's key. New certificates carry the old names that the target
 * still lists: a name dropped from the policy is dropped at the next renewal.
 */
export async function renewHost(
  deps: HostDeps,
  body: { challenge: string; renewals: Renewal[] },
  challengeOk: (challenge: string) => boolean,
  sourceAddress?: string,
): Promise<HostCertificates> {
  const refused = async (e: JitError, target?: string): Promise<never> => {
    deps.log.warn({ target, why: e.message, sourceAddress }, 'host renewal refused');
    await deps.audit.append({ type: 'host_renew_refused', target, why: e.message, sourceAddress });
    throw e;
  };
  if (!challengeOk(body.challenge)) {
    return refused(new JitError('unauthenticated', 'challenge: unknown, expired or already used; get a new one from POST /v1/hosts/challenge'));
  }
  let checked;
  try {
    checked = body.renewals.map((r, i) => checkRenewal(deps, r, i, body.challenge));
  } catch (e) {
    return refused(e as JitError);
  }
  const { target, enrolment } = checked[0];
  if (checked.some((c) => c.target !== target || c.enrolment !== enrolment)) {
    return refused(new JitError('bad_request', 'renewals: every certificate must come from the same enrolment'), target);
  }
  const allowed = new Set(certifiableHostNames(deps.policy(), target));
  const principals = checked[0].cert.principals.filter((p) => allowed.has(p));
  if (principals.length === 0) {
    return refused(new JitError('forbidden', `target ${target} no longer lists this host's names; the host cannot renew`), target);
  }
  const keys = parseHostKeys(deps, checked.map((c) => publicKeyLine(c.cert.publicKey)));
  const result: HostCertificates = { target, principals, certificates: await signHostCerts(deps, keys, target, enrolment, principals) };
  await auditIssued(deps, 'host_renew', result, enrolment, sourceAddress);
  return result;
}
