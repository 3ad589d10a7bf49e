/**
 * The per-target timeline of the access report, drawn on the server as SVG (no script): one lane
 * per grant, a bar from validAfter to when access ended, a diamond where an approval let it
 * start, a cross where it was revoked. Pure: rows in, markup out.
 */
import { endOf, type AccessRow } from '../../service/report.js';
import { html, type Html } from './html.js';

export const MAX_LANES = 40;
const WIDTH = 720;
const LABEL = 150;
const LANE = 18;
const TOP = 22;

const fmt = (ms: number) => new Date(ms).toISOString().slice(0, 16).replace('T', ' ');

export function timelineSvg(target: string, rows: readonly AccessRow[], range: { from: number; to: number }): Html {
  const shown = rows.slice(0, MAX_LANES);
  const span = Math.max(1, range.to - range.from);
  const x = (ms: number) => (LABEL + ((Math.min(Math.max(ms, range.from), range.to) - range.from) / span) * (WIDTH - LABEL - 10)).toFixed(1);
  const height = TOP + shown.length * LANE + 8;
  const lanes = shown.map((r, i) => {
    const y = TOP + i * LANE;
    const end = endOf(r);
    const x1 = x(r.from);
    const w = Math.max(2, Number(x(end)) - Number(x1)).toFixed(1);
    const revoked = r.revokedAt !== undefined && r.revokedAt <= r.until;
    const title = `${r.user} as ${r.principals.join(',')} ${fmt(r.from)} → ${fmt(end)} UTC, task ${r.task}` +
      (r.approvedBy.length ? `, approved by ${r.approvedBy.join(', ')}` : '') +
      (revoked ? `, revoked by ${r.revokedBy ?? '?'}` : '');
    return html`<g class="lane"><title>${title}</title>
<text x="4" y="${y + 12}" class="who">${`${r.user} → ${r.account ?? r.principals[0] ?? ''}`.slice(0, 24)}</text>
<rect x="${x1}" y="${y + 3}" width="${w}" height="11" rx="2" class="${revoked ? 'bar revoked' : 'bar'}"/>
${r.approvedBy.length ? html`<path d="M${x(r.issuedAt)} ${y + 2}l4 6.5-4 6.5-4-6.5z" class="approved"/>` : ''}
${revoked ? html`<path d="M${Number(x(r.revokedAt!)) - 4} ${y + 4}l8 9m0-9l-8 9" class="revoke"/>` : ''}</g>`;
  });
  const more = rows.length > shown.length ? html`<text x="4" y="${height - 2}" class="more">${rows.length - shown.length} more grants not drawn: narrow the filters</text>` : '';
  return html`<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 ${WIDTH} ${height + (more ? 12 : 0)}" role="img" aria-label="${`access timeline for ${target}`}">
<text x="4" y="14" class="axis">${target}</text><text x="${LABEL}" y="14" class="axis">${fmt(range.from)}</text><text x="${WIDTH - 10}" y="14" text-anchor="end" class="axis">${fmt(range.to)} UTC</text>
${lanes}${more}</svg>`;
}
