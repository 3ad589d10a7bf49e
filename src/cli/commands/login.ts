/**
 * jit-ssh login <target> --task … : fresh ed25519 key → request → wait while pending →
 * key + certificate into ssh-agent (lifetime = time left) and into the cert dir.
 * `--no-wait` leaves a pending request behind (its key waits in the dir); `--resume <id>`
 * collects it later.
 */
import { dirname } from 'node:path';
import { knownHostsOptions, writeKnownHosts } from '../../client/known-hosts.js';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { JitError } from '../../errors.js';
import { escapeForTerminal } from '../../policy/text.js';
import { publicKeyBlobOf } from '../../ca/signer.js';
import { publicKeyLine } from '../../ca/keys.js';
import { parseCertificate } from '../../ca/cert.js';
import type { AllowedTarget, IssuedRequest, PendingRequest, RequestView } from '../../client/api.js';
import { agentComment, fromDir, pruneAgent, removeAgentCerts } from '../../client/agent-certs.js';
import {
  type CertFiles,
  type CertMeta,
  pruneExpired,
  readMeta,
  readPending,
  remainingSeconds,
  removePending,
  writeCert,
  writePending,
} from '../../client/keyfiles.js';
import { unknownNameError } from './unknown-names.js';
import { clientContext, humanDuration, localTime, printJson, REQUEST_ID, type ClientArgs, type ClientContext } from './client-args.js';

export interface LoginArgs extends ClientArgs {
  target?: string;
  task?: string;
  reason?: string;
  ticket?: string;
  ttl?: string;
  account?: string;
  wait?: boolean;
  agent?: boolean;
  resume?: string;
}

export interface Obtained {
  meta: CertMeta;
  files: CertFiles;
  /** Seconds the agent keeps it; undefined when it was not added. */
  agentLifetime?: number;
  agentNote?: string;
}

export async function login(a: LoginArgs): Promise<void> {
  const ctx = clientContext(a);
  try {
    if (a.resume) {
      if (!REQUEST_ID.test(a.resume)) throw new JitError('invalid_field', `--resume: '${a.resume}' is not a request id (req_…)`);
    } else if (!a.target || !a.task) {
      throw new JitError('invalid_field', 'login needs a target and --task (or --resume <request-id>)');
    }
    const got = await obtainCertificate(ctx, a);
    if (got) report(ctx, got);
  } finally {
    ctx.close();
  }
}

/**
 * The whole login; also used by `jit-ssh ssh`. Returns undefined when the request was left
 * pending on purpose (--no-wait).
 */
export async function obtainCertificate(ctx: ClientContext, a: LoginArgs): Promise<Obtained | undefined> {
  const useAgent = a.agent !== false && Boolean(process.env.SSH_AUTH_SOCK);
  const pruning = prune(ctx, useAgent);
  const started = a.resume ? await resumeRequest(ctx, a.resume, a.account) : await submitRequest(ctx, a);

  if (started.view.status === 'pending' && a.wait === false) {
    await pruning;
    reportPending(ctx, started.view as PendingRequest);
    return undefined;
  }
  const issued = await awaitIssued(ctx, started.view);
  const parsed = parseCertificate(issued.certificate);
  if (!parsed.publicKey.equals(publicKeyBlobOf(started.key))) {
    throw new JitError('invalid_certificate', `the CA returned a certificate for another key (request ${issued.id})`);
  }
  const hosts = await started.hosts;
  if (hosts) await trustHosts(ctx, hosts);
  const meta = certMetaFor(ctx, issued, started, hosts);

  await pruning;
  const added = useAgent ? await addToAgent(ctx, meta, started.key, issued.certificate, Number(parsed.validBefore)) : {};
  if (added.comment) meta.agentComment = added.comment;
  const saved = await saveReplacingPrevious(ctx, meta, started.key, issued.certificate);
  const notes = [added.note, saved.note].filter(Boolean);
  return { meta, files: saved.files, agentLifetime: added.lifetime, agentNote: notes.length ? notes.join('; ') : undefined };
}

/** A request made or resumed: its key, where it stands, and the target list asked for alongside. */
interface StartedRequest {
  key: KeyObject;
  view: IssuedRequest | PendingRequest | RequestView;
  target: string;
  task?: string;
  account?: string;
  /** Which host to connect to comes from the target list; asked while the CA signs. */
  hosts: Promise<AllowedTarget[] | undefined>;
}

/** --resume: the key left in the dir by a `--no-wait` login, and the request's current state. */
async function resumeRequest(ctx: ClientContext, id: string, account: string | undefined): Promise<StartedRequest> {
  const pending = await readPending(ctx.dir, id);
  if (!pending) {
    throw new JitError('not_found', `no pending key for ${id} in ${ctx.dir}: --resume works where the request was made (same --out dir)`);
  }
  const view = await ctx.api.getRequest(id);
  const hosts = ctx.api.targets().catch(() => undefined);
  const { target, task } = pending.meta;
  return { key: pending.key, view, target, task, account: account ?? pending.meta.account, hosts };
}

/** A fresh key and a new request; a pending request's key waits in the dir for --resume. */
async function submitRequest(ctx: ClientContext, a: LoginArgs): Promise<StartedRequest> {
  const [target, task] = [a.target!, a.task!];
  const key = generateKeyPairSync('ed25519').privateKey;
  const publicKey = publicKeyLine(publicKeyBlobOf(key), `jit-ssh:${ctx.user}`);
  await ctx.api.ensureToken();
  const hosts = ctx.api.targets().catch(() => undefined);
  const view = await ctx.api
    .createRequest({ target, task, publicKey, reason: a.reason, ticket: a.ticket, ttl: a.ttl, account: a.account })
    .catch(async (e: unknown) => {
      throw (noRuleDecided(e) && unknownNameError((await hosts) ?? [], target, task)) || e;
    });
  if (view.status === 'pending') {
    const meta = {
      id: view.id,
      target,
      task,
      user: ctx.user,
      server: ctx.server,
      createdAt: new Date().toISOString(),
      ...(view.expiresAt ? { expiresAt: view.expiresAt } : {}),
      ...(a.account ? { account: a.account } : {}),
    };
    writePending(ctx.dir, meta, key);
  }
  return { key, view, target, task, account: a.account, hosts };
}

/** Waits out a pending request; anything but an issued certificate ends the login with an error. */
async function awaitIssued(ctx: ClientContext, first: StartedRequest['view']): Promise<IssuedRequest> {
  const view = first.status === 'pending' ? await waitForDecision(ctx, first as PendingRequest) : first;
  // Issued, denied, expired or withdrawn: the pending key has served its purpose either way.
  removePending(ctx.dir, view.id);
  if (view.status !== 'issued') throw endedError(view as RequestView);
  return view as IssuedRequest;
}

/** The hosts' side of trust: @cert-authority lines for every host the user may reach. */
async function trustHosts(ctx: ClientContext, hosts: AllowedTarget[]): Promise<void> {
  const hostCaKeys = await ctx.api.hostCaKeys().catch(() => [] as string[]);
  try {
    writeKnownHosts(ctx.dir, hostCaKeys, hosts);
  } catch {
    // without it ssh falls back to the user's own known_hosts; the certificate still works
  }
}

function certMetaFor(ctx: ClientContext, issued: IssuedRequest, started: StartedRequest, hosts: AllowedTarget[] | undefined): CertMeta {
  const { target, task, account } = started;
  const host = firstHost(hosts, target);
  return {
    id: issued.id,
    target,
    ...(task ? { task } : {}),
    account: (issued as RequestView).account ?? account ?? accountOf(issued.principals[0], target),
    user: ctx.user,
    server: ctx.server,
    serial: issued.serial,
    keyId: issued.keyId,
    principals: issued.principals,
    validAfter: issued.validAfter,
    validBefore: issued.validBefore,
    ...(host ? { host } : {}),
  };
}

/** What adding to ssh-agent came to: all fields absent when it was not tried or not possible. */
interface AgentOutcome {
  lifetime?: number;
  comment?: string;
  note?: string;
}

/** Key + certificate into ssh-agent for the time the certificate has left; never fatal. */
async function addToAgent(ctx: ClientContext, meta: CertMeta, key: KeyObject, certLine: string, validBefore: number): Promise<AgentOutcome> {
  const lifetime = Math.floor(validBefore - Date.now() / 1000);
  try {
    const agent = await ctx.agent();
    if (!agent || lifetime < 1) return {};
    // One jit-ssh entry per target and cert dir, like the files: the one they replace goes
    // too, but never the entry another cert dir added for the same target name.
    await removeAgentCerts(agent, (c) => c.target === meta.target && fromDir(c, ctx.dir));
    const comment = agentComment(meta.target, meta.id, ctx.dir);
    await agent.addEd25519WithCert({
      privateKey: key,
      certificate: Buffer.from(certLine.trim().split(/\s+/)[1], 'base64'),
      comment,
      lifetimeSeconds: lifetime,
    });
    return { lifetime, comment };
  } catch (e) {
    return { note: `not added to ssh-agent (${(e as Error).message}); the key files below still work` };
  }
}

/**
 * The new certificate replaces the files and agent entry of an older one for this target;
 * the older grant is revoked too, so no valid certificate is left that `done` can no longer reach.
 */
async function saveReplacingPrevious(ctx: ClientContext, meta: CertMeta, key: KeyObject, certLine: string): Promise<{ files: CertFiles; note?: string }> {
  const superseded = readMeta(ctx.dir, meta.target);
  const files = writeCert(ctx.dir, meta, key, certLine);
  if (superseded && superseded.id !== meta.id && remainingSeconds(superseded) > 0) {
    try {
      await ctx.api.revokeRequest(superseded.id, `superseded by ${meta.id}`);
    } catch (e) {
      return { files, note: `could not revoke the previous certificate ${superseded.id} (${(e as Error).message}); run: jit-ssh revoke ${superseded.id}` };
    }
  }
  return { files };
}

/** Expired certificates leave the dir and the agent; never fatal. */
async function prune(ctx: ClientContext, useAgent: boolean): Promise<void> {
  try {
    pruneExpired(ctx.dir);
  } catch {
    // an unreadable dir is reported when we write to it
  }
  if (!useAgent) return;
  try {
    const agent = await ctx.agent();
    if (agent) await pruneAgent(agent);
  } catch {
    // the agent is optional for pruning
  }
}

/** Principals render as `{account}@{target}` by default; other formats keep the whole principal. */
export function accountOf(principal: string | undefined, target: string): string | undefined {
  if (!principal) return undefined;
  const suffix = `@${target}`;
  return principal.endsWith(suffix) ? principal.slice(0, -suffix.length) : principal;
}

/** A policy denial before any rule applied: the target or task is not one of the requester's. */
function noRuleDecided(e: unknown): boolean {
  const server = e instanceof JitError && e.code === 'policy_denied' ? (e.details as { server?: { rule?: unknown } } | undefined)?.server : undefined;
  return server !== undefined && server.rule === null;
}

function firstHost(list: AllowedTarget[] | undefined, target: string): string | undefined {
  return list?.find((t) => t.target === target)?.hosts[0];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls until the request leaves 'pending'. On a terminal a status line shows the request,
 * who must approve and the time waited; Ctrl-C leaves the request waiting and says how to
 * collect it.
 */
async function waitForDecision(ctx: ClientContext, first: PendingRequest): Promise<RequestView> {
  const id = first.id;
  const started = Date.now();
  const live = process.stderr.isTTY && !ctx.json;
  const pollMs = Math.max(100, Number(process.env.JITSSH_POLL_MS) || 1000);
  let approvers = first.approvers;
  let needed = first.approvalsNeeded;

  const line = () => {
    const s = Math.floor((Date.now() - started) / 1000);
    const elapsed = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
    return escapeForTerminal(`waiting for ${needed} approval${needed === 1 ? '' : 's'} from ${approvers.join(', ') || 'an approver'} · ${id} · ${elapsed} · Ctrl-C leaves it pending`);
  };
  const onInterrupt = () => {
    if (live) process.stderr.write('\r\x1b[2K');
    process.stderr.write(`left ${id} pending; collect it later with: jit-ssh login --resume ${id}\n`);
    process.exit(130);
  };
  process.on('SIGINT', onInterrupt);
  process.on('SIGTERM', onInterrupt);
  if (live) process.stderr.write(line());
  else ctx.note(`${id} is pending: ${line().replace(/ · [0-9]+:[0-9]{2} · Ctrl-C leaves it pending$/, '')}`);

  const ticker = live ? setInterval(() => process.stderr.write(`\r\x1b[2K${line()}`), 1000) : undefined;
  try {
    for (;;) {
      await sleep(pollMs);
      const v = await ctx.api.getRequest(id);
      if (v.status !== 'pending') {
        if (live) process.stderr.write('\r\x1b[2K');
        return v;
      }
      approvers = v.approvers ?? approvers;
      needed = v.approvalsNeeded ?? needed;
    }
  } finally {
    if (ticker) clearInterval(ticker);
    process.off('SIGINT', onInterrupt);
    process.off('SIGTERM', onInterrupt);
  }
}

function endedError(v: RequestView): JitError {
  if (v.status === 'denied') {
    return new JitError('policy_denied', `request ${v.id} was denied${v.deniedBy ? ` by ${v.deniedBy}` : ''}${v.denialReason ? `: ${v.denialReason}` : ''}`, {
      details: { id: v.id, status: v.status },
    });
  }
  return new JitError('policy_denied', `request ${v.id} is ${v.status}; no certificate was issued`, { details: { id: v.id, status: v.status } });
}

function reportPending(ctx: ClientContext, v: PendingRequest): void {
  if (ctx.json) {
    printJson({ ...v, resume: `jit-ssh login --resume ${v.id}` });
    return;
  }
  ctx.print(v.id);
  process.stderr.write(
    `${v.id} is pending: needs ${v.approvalsNeeded} approval${v.approvalsNeeded === 1 ? '' : 's'} from ${v.approvers.join(', ')}` +
      `${v.expiresAt ? ` before ${localTime(v.expiresAt)}` : ''}\ncollect it with: jit-ssh login --resume ${v.id}\n`,
  );
}

export function sshCommandFor(meta: CertMeta, files: CertFiles): string[] {
  return [
    'ssh', '-i', files.keyFile, '-o', `CertificateFile=${files.certFile}`, '-o', 'IdentitiesOnly=yes',
    ...knownHostsOptions(dirname(files.keyFile)),
    `${meta.account ?? 'USER'}@${meta.host ?? 'HOST'}`,
  ];
}

function report(ctx: ClientContext, got: Obtained): void {
  const { meta, files } = got;
  const left = Math.floor((Date.parse(meta.validBefore) - Date.now()) / 1000);
  const ssh = sshCommandFor(meta, files);
  if (ctx.json) {
    printJson({
      id: meta.id,
      status: 'issued',
      target: meta.target,
      task: meta.task,
      account: meta.account,
      principals: meta.principals,
      serial: meta.serial,
      keyId: meta.keyId,
      validAfter: meta.validAfter,
      validBefore: meta.validBefore,
      keyFile: files.keyFile,
      certFile: files.certFile,
      agent: got.agentLifetime !== undefined,
      host: meta.host,
      sshCommand: ssh,
    });
    return;
  }
  if (got.agentNote) process.stderr.write(`warning: ${got.agentNote}\n`);
  ctx.print(`certificate for ${meta.target} issued (${meta.id}${meta.task ? `, task ${meta.task}` : ''})`);
  ctx.print(`  principals  ${meta.principals.join(', ')}`);
  ctx.print(`  expires     ${localTime(meta.validBefore)} (in ${humanDuration(left)})`);
  ctx.print(`  key         ${files.keyFile}  (certificate ${files.certFile})`);
  ctx.print(`  ssh-agent   ${got.agentLifetime !== undefined ? `added for ${humanDuration(got.agentLifetime)}` : 'not added'}`);
  ctx.print(`  connect     jit-ssh ssh ${meta.target}`);
  ctx.print(`          or  ${ssh.join(' ')}`);
  ctx.print(`  when done   jit-ssh done ${meta.target}`);
}

