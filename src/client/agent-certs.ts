/**
 * jit-ssh's own entries in ssh-agent: certificates added by `jit-ssh login` carry the comment
 * `jit-ssh:<target>:<request-id>`, so status/done/prune find them again without touching the
 * user's other keys.
 */
import type { AgentClient } from './agent.js';
import { parseCertificate } from '../ca/cert.js';

export const AGENT_COMMENT_PREFIX = 'jit-ssh:';

export interface AgentCert {
  blob: Buffer;
  comment: string;
  target?: string;
  id?: string;
  serial: string;
  /** Seconds since the epoch. */
  validBefore: number;
}

export function agentComment(target: string, id: string): string {
  return `${AGENT_COMMENT_PREFIX}${target}:${id}`;
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
    const [, target, id] = i.comment.split(':');
    out.push({
      blob: i.blob,
      comment: i.comment,
      ...(target ? { target } : {}),
      ...(id ? { id } : {}),
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
