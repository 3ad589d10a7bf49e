/**
 * The pages, as pure functions from data to markup (html`` escapes every value). No inline
 * script or style anywhere: the CSP forbids both.
 */
import { formatDuration } from '../../policy/duration.js';
import { endOf, type AccessRow, type RawFilter } from '../../service/report.js';
import type { RequestRecord } from '../../store/types.js';
import { html, type Html } from './html.js';

export interface Viewer {
  user: string;
  auditor: boolean;
  csrf: string;
}

const iso = (ms: number) => new Date(ms).toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
const ago = (ms: number, now: number) => `${formatDuration(Math.max(0, Math.floor((now - ms) / 1000)))} ago`;

export function layout(title: string, body: Html, opts: { viewer?: Viewer; seq?: number } = {}): string {
  const v = opts.viewer;
  const nav = v
    ? html`<nav><a href="/ui/">Waiting for me</a> · <a href="/ui/mine">My access</a>${v.auditor ? html` · <a href="/ui/report">Access report</a>` : ''}</nav>
<form method="post" action="/ui/logout"><input type="hidden" name="csrf" value="${v.csrf}"><span class="muted">${v.user}</span> <button class="plain" type="submit">Sign out</button></form>`
    : '';
  const live = v && opts.seq !== undefined ? html` data-live="1" data-seq="${opts.seq}"` : '';
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${title} · jit-ssh</title><link rel="stylesheet" href="/ui/static/app.css"><script src="/ui/static/app.js" defer></script></head>
<body${live}><header><span class="brand">jit-ssh</span>${nav}</header>
<main>${body}</main></body></html>`.text;
}

function status(rec: RequestRecord, now: number): Html {
  const s = rec.status === 'pending' && rec.expiresAt <= now ? 'expired' : rec.status;
  return html`<span class="${`status ${s}`}">${s}</span>`;
}

function facts(rec: RequestRecord, now: number): Html {
  const needed = rec.approval?.count ?? 0;
  return html`<dl>
<dt>Requester</dt><dd>${rec.user}</dd>
<dt>Target</dt><dd>${rec.target}</dd>
<dt>Task</dt><dd>${rec.task}</dd>
<dt>Accounts</dt><dd>${rec.draft.principals.join(', ')}</dd>
<dt>TTL</dt><dd>${formatDuration(rec.draft.ttlSeconds)}</dd>
<dt>Reason</dt><dd>${rec.reason ?? '—'}</dd>
<dt>Ticket</dt><dd>${rec.ticket ?? '—'}</dd>
<dt>Rule</dt><dd>${rec.rule ?? '—'}</dd>
<dt>Asked</dt><dd>${ago(rec.createdAt, now)} (${iso(rec.createdAt)})</dd>
<dt>Approvals</dt><dd>${`${rec.approvals.length} of ${needed}`}${rec.approvals.map((a) => html`<br>${a.by}, ${ago(a.at, now)}${a.comment ? html`: “${a.comment}”` : ''}`)}</dd>
${rec.cert ? html`<dt>Certificate</dt><dd>serial ${rec.cert.serial}, valid until ${iso(rec.cert.validBefore * 1000)}</dd>` : ''}
${rec.denial ? html`<dt>Denied</dt><dd>by ${rec.denial.by ?? '?'}: ${rec.denial.reason}</dd>` : ''}
${rec.revokedAt ? html`<dt>Revoked</dt><dd>by ${rec.revokedBy ?? '?'} ${ago(rec.revokedAt, now)}</dd>` : ''}
</dl>`;
}

function decisionForms(rec: RequestRecord, csrf: string): Html {
  return html`<div class="actions">
<form method="post" action="${`/ui/requests/${rec.id}/approve`}"><input type="hidden" name="csrf" value="${csrf}">
<label>Comment (optional)<textarea name="comment" rows="2" maxlength="500"></textarea></label><button class="approve" type="submit">Approve</button></form>
<form method="post" action="${`/ui/requests/${rec.id}/deny`}"><input type="hidden" name="csrf" value="${csrf}">
<label>Reason for denying<textarea name="reason" rows="2" maxlength="500" required></textarea></label><button class="deny" type="submit">Deny</button></form>
</div>`;
}

function revokeForm(rec: RequestRecord, csrf: string): Html {
  return html`<form class="actions" method="post" action="${`/ui/requests/${rec.id}/revoke`}"><input type="hidden" name="csrf" value="${csrf}">
<input type="text" name="reason" maxlength="500" placeholder="Reason (optional)" aria-label="Reason for revoking"><button class="revoke" type="submit">Revoke</button></form>`;
}

export function waitingPage(recs: readonly RequestRecord[], now: number, csrf: string): Html {
  const cards = recs.map(
    (rec) => html`<section class="card" id="${rec.id}"><h2><a href="${`/ui/requests/${rec.id}`}">${rec.user} → ${rec.account ?? rec.draft.account}@${rec.target}</a></h2>
${facts(rec, now)}${decisionForms(rec, csrf)}</section>`,
  );
  return html`<h1>Waiting for me</h1>${cards.length ? cards : html`<p class="muted">Nothing is waiting for your approval.</p>`}`;
}

export function requestPage(rec: RequestRecord, now: number, opts: { csrf: string; canDecide: boolean; canRevoke: boolean; own: boolean; notice?: string }): Html {
  const pending = rec.status === 'pending' && rec.expiresAt > now;
  return html`<h1>Request ${rec.id} ${status(rec, now)}</h1>
${opts.notice ? html`<p class="notice">${opts.notice}</p>` : ''}
<section class="card">${facts(rec, now)}
${pending && opts.canDecide ? decisionForms(rec, opts.csrf) : ''}
${pending && opts.own ? html`<p class="muted">This is your own request: someone else must approve it.</p>` : ''}
${rec.status === 'issued' && opts.canRevoke ? revokeForm(rec, opts.csrf) : ''}</section>`;
}

export function minePage(recs: readonly RequestRecord[], now: number, csrf: string): Html {
  const live = recs.filter((r) => r.status === 'issued' && (r.cert?.validBefore ?? 0) * 1000 > now);
  const others = recs.filter((r) => !live.includes(r));
  return html`<h1>My access</h1><h2>Live certificates</h2>
${live.length ? live.map((rec) => html`<section class="card"><h2><a href="${`/ui/requests/${rec.id}`}">${rec.account ?? rec.draft.account}@${rec.target}</a> ${status(rec, now)}</h2>${facts(rec, now)}${revokeForm(rec, csrf)}</section>`) : html`<p class="muted">No live certificates.</p>`}
<h2>Requests</h2>
${others.length ? html`<div class="table"><table><thead><tr><th>Request</th><th>Target</th><th>Task</th><th>Status</th><th>Asked</th></tr></thead><tbody>${others.map((rec) => html`<tr><td><a href="${`/ui/requests/${rec.id}`}">${rec.id}</a></td><td>${rec.target}</td><td>${rec.task}</td><td>${status(rec, now)}</td><td>${ago(rec.createdAt, now)}</td></tr>`)}</tbody></table></div>` : html`<p class="muted">No other requests.</p>`}`;
}

export function reportPage(raw: RawFilter, rows: readonly AccessRow[], timelines: readonly Html[], opts: { truncated: boolean; csvHref: string; error?: string }): Html {
  const field = (name: keyof RawFilter, label: string, hint: string) =>
    html`<label>${label}<input type="text" name="${name}" value="${raw[name] ?? ''}" placeholder="${hint}"></label>`;
  const header = ['Who', 'Target', 'Principals', 'From', 'Until', 'Task', 'Reason', 'Ticket', 'Approved by', 'Revoked'];
  return html`<h1>Access report</h1>
<form class="filters card" method="get" action="/ui/report">${field('user', 'User', 'alice')}${field('target', 'Target', 'prod-db')}${field('since', 'Since', '2026-11-01 or 30d')}${field('until', 'Until', '2026-11-30')}
<button class="plain" type="submit">Filter</button><a href="${opts.csvHref}">Download CSV</a></form>
${opts.error ? html`<p class="notice">${opts.error}</p>` : ''}
${opts.truncated ? html`<p class="notice">Showing the first ${rows.length} grants; narrow the filters or download the CSV for all of them.</p>` : ''}
${timelines.map((t) => html`<div class="table">${t}</div>`)}
<div class="table"><table><thead><tr>${header.map((h) => html`<th>${h}</th>`)}</tr></thead><tbody>
${rows.map((r) => html`<tr><td>${r.user}</td><td>${r.target}</td><td>${r.principals.join(', ')}</td><td>${iso(r.from)}</td><td>${iso(endOf(r))}</td><td>${r.task}</td><td class="wide">${r.reason ?? ''}</td><td>${r.ticket ?? ''}</td><td>${r.approvedBy.join(', ') || 'auto'}</td><td>${r.revokedAt !== undefined ? `${r.revokedBy ?? '?'}${r.revokeReason ? `: ${r.revokeReason}` : ''}` : ''}</td></tr>`)}
</tbody></table></div>${rows.length === 0 ? html`<p class="muted">No grants match.</p>` : ''}`;
}

export function messagePage(title: string, message: string): Html {
  return html`<h1>${title}</h1><p>${message}</p><p><a href="/ui/">Back to jit-ssh</a></p>`;
}

/**
 * The end of sign-in: a page that moves on by itself. A same-site navigation, so the browser
 * sends the SameSite=Strict session cookie set just now; a 302 here would still belong to the
 * cross-site redirect chain from the IdP, and the page would bounce back to sign-in forever.
 */
export function movingOnPage(next: string): string {
  return html`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="${`0;url=${next}`}">
<title>Signed in · jit-ssh</title><link rel="stylesheet" href="/ui/static/app.css"></head>
<body><main><p>Signed in. <a href="${next}">Continue</a></p></main></body></html>`.text;
}
