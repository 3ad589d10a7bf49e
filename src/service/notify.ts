/**
 * Webhooks on pending/approved/denied requests: a JSON POST with a Slack-compatible `text`.
 * Fire and forget: delivery runs in the background with a timeout and retries, so a slow or
 * dead receiver never delays issuance. Failures are logged and audited.
 */
import type { Logger } from 'pino';
import type { AuditLog, RequestRecord } from '../store/types.js';

export type NotifyEvent = 'pending' | 'approved' | 'denied' | 'revoked';

export interface Notifier {
  send(event: NotifyEvent, rec: RequestRecord): void;
  /** Resolves when every delivery started so far has finished (tests, shutdown). */
  idle(): Promise<void>;
}

export interface WebhookOptions {
  url?: string;
  timeoutMs: number;
  retries: number;
  backoffMs?: number;
  /** The daemon's configured publicUrl: payloads then carry `url`, the request's web page. */
  publicUrl?: string;
}

/** The request's page in the web UI, when the daemon knows its public URL. */
export function requestPageUrl(publicUrl: string | undefined, id: string): string | undefined {
  return publicUrl ? `${publicUrl.replace(/\/+$/, '')}/ui/requests/${encodeURIComponent(id)}` : undefined;
}

export function webhookText(event: NotifyEvent, rec: RequestRecord): string {
  const who = `${rec.user} → ${rec.account}@${rec.target} for task ${rec.task}`;
  const ticket = rec.ticket ? ` (${rec.ticket})` : '';
  switch (event) {
    case 'pending':
      return `jit-ssh: ${who}${ticket} needs approval from ${rec.approval?.approvers.join(', ')}: jit-ssh approve ${rec.id}`;
    case 'approved':
      return `jit-ssh: request ${rec.id} approved: ${who}${ticket}`;
    case 'denied':
      return `jit-ssh: request ${rec.id} denied: ${who}${ticket}`;
    case 'revoked':
      return `jit-ssh: request ${rec.id} revoked: ${who}${ticket}`;
  }
}

export function createNotifier(opts: WebhookOptions, audit: AuditLog, log: Logger): Notifier {
  const inflight = new Set<Promise<void>>();

  const deliver = async (hookUrl: string, event: NotifyEvent, rec: RequestRecord): Promise<void> => {
    const url = requestPageUrl(opts.publicUrl, rec.id);
    const body = JSON.stringify({
      event,
      text: webhookText(event, rec) + (url ? ` ${url}` : ''),
      ...(url ? { url } : {}),
      request: { id: rec.id, user: rec.user, target: rec.target, task: rec.task, account: rec.account, ticket: rec.ticket, status: rec.status },
    });
    let lastError = '';
    for (let attempt = 0; attempt <= opts.retries; attempt++) {
      try {
        const res = await fetch(hookUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
          signal: AbortSignal.timeout(opts.timeoutMs),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) return;
        lastError = `HTTP ${res.status}`;
      } catch (e) {
        lastError = (e as Error).name === 'TimeoutError' ? 'timeout' : ((e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message);
      }
      if (attempt < opts.retries) await new Promise((r) => setTimeout(r, (opts.backoffMs ?? 500) * 2 ** attempt));
    }
    log.warn({ event, requestId: rec.id, error: lastError }, 'webhook delivery failed');
    await audit.append({ type: 'webhook_failure', id: rec.id, event, error: lastError }).catch(() => undefined);
  };

  return {
    send(event, rec) {
      const url = typeof rec.webhook === 'string' ? rec.webhook : opts.url;
      if (!url) return;
      const p = deliver(url, event, rec).finally(() => inflight.delete(p));
      inflight.add(p);
    },
    async idle() {
      while (inflight.size > 0) await Promise.allSettled([...inflight]);
    },
  };
}
