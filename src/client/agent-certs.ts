/**
 * jit-ssh's own entries in ssh-agent: certificates added by `jit-ssh login` carry the comment
 * `jit-ssh:<target>:<request-id>:<dir-tag>`, so status/done/prune find them again without
 * touching the user's other keys. The dir tag names the cert dir (--out) that added the entry:
 * two cert dirs sharing one agent (two servers, two roles) each replace only their own entry
 * for a target.
 */
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import type { AgentClient } from './agent.js';
import { parseCertificate } from '../ca/cert.js';

export const AGENT_COMMENT_PREFIX = 'jit-ssh:';

export interface AgentCert {
  blob: Buffer;
  comment: string;
  target?: string;
  id?: string;
  /** dirTag() of the cert dir that added it; absent on entries from older versions */
  dir?: string;
  serial: string;
  /** Seconds since the epoch. */
  validBefore: number;
}

export function agentComment(target: string, id: string, dir: string): string {
  return `${AGENT_COMMENT_PREFIX}${target}:${id}:${dirTag(dir)}`;
}

/** A short, stable name for a cert dir (12 hex digits of the SHA-256 of its absolute path). */
export function dirTag(dir: string): string {
  return createHash('sha256').update(resolve(dir)).digest('hex').slice(0, 12);
}

/** Whether the entry was added from this cert dir (untagged entries predate tags: treated as ours). */
export function fromDir(c: AgentCert, dir: string): boolean {
  return c.dir === undefined || c.dir === dirTag(dir);
}

export async function listAgentCerts(agent: AgentClient): Promise<AgentCert[]> {
  const out: AgentCert[] = [];
  for (const i of await agent.listIdentities()) {
    if (!i.comment.startsWith(AGENT_COMMENT_PREFIX)) continue;
    let parsed;
    try {
      parsed = parseCertificate(i.blob);
    } catch {
      continue; // a plain key someone named like ours: not a certificate, not ours
    }
    const [, target, id, dir] = i.comment.split(':');
    out.push({
      blob: i.blob,
      comment: i.comment,
      ...(target ? { target } : {}),
      ...(id ? { id } : {}),
      ...(dir ? { dir } : {}),
      serial: parsed.serial.toString(),
      validBefore: Number(parsed.validBefore),
    });
  }
  return out;
}

/** Removes the agent's jit-ssh certificates that match; returns how many went. */
export async function removeAgentCerts(agent: AgentClient, match: (c: AgentCert) => boolean): Promise<number> {
  let n = 0;
  for (const c of await listAgentCerts(agent)) {
    if (!match(c)) continue;
    try {
      await agent.removeIdentity(c.blob);
      n++;
    } catch {
      // already gone (its lifetime ran out between list and remove)
    }
  }
  return n;
}

/** Drops expired jit-ssh certificates (an agent without lifetime support keeps them forever). */
export function pruneAgent(agent: AgentClient, nowMs = Date.now()): Promise<number> {
  const now = Math.floor(nowMs / 1000);
  return removeAgentCerts(agent, (c) => c.validBefore <= now);
}
