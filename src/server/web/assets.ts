/**
 * The pages' only stylesheet and script, served by the daemon (no build step, no CDN). Kept here
 * as strings so `tsc` alone ships them. The script does one thing: live updates (poll
 * /ui/changes; when something changed, fetch the page again and swap its <main>, unless the
 * person is typing into a form).
 */
export const APP_CSS = `:root{--fg:#1d2330;--muted:#5b6474;--line:#d8dde6;--bg:#f6f7f9;--ok:#17703b;--bad:#b3261e;--accent:#1f5fbf}
*{box-sizing:border-box}body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;padding:.6rem 1rem;background:#fff;border-bottom:1px solid var(--line)}
header .brand{font-weight:700;margin-right:auto}header a{color:var(--accent);text-decoration:none}header form{margin:0}
main{max-width:64rem;margin:0 auto;padding:1rem}h1{font-size:1.3rem;margin:.2rem 0 1rem}h2{font-size:1.1rem}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:.8rem 1rem;margin:0 0 1rem}
.card h2{margin:0 0 .4rem;font-size:1.05rem;overflow-wrap:anywhere}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.15rem .8rem;margin:.4rem 0}dt{color:var(--muted)}dd{margin:0;overflow-wrap:anywhere;white-space:pre-wrap}
.actions{display:flex;flex-wrap:wrap;gap:.6rem;margin-top:.6rem}.actions form{flex:1 1 16rem;display:flex;flex-direction:column;gap:.4rem}
textarea,input,select{font:inherit;padding:.45rem;border:1px solid var(--line);border-radius:6px;width:100%}
button{font:inherit;padding:.55rem 1rem;border-radius:6px;border:1px solid transparent;cursor:pointer;min-height:2.6rem}
.approve{background:var(--ok);color:#fff}.deny,.revoke{background:#fff;color:var(--bad);border-color:var(--bad)}.plain{background:#fff;border-color:var(--line)}
.status{display:inline-block;padding:0 .45rem;border-radius:4px;font-size:.85rem;background:#e8ebf0}.status.issued{background:#dcefe3}.status.denied,.status.revoked{background:#f7dedc}
.muted{color:var(--muted)}.notice{background:#fff8e1;border:1px solid #f0d98c;border-radius:6px;padding:.5rem .8rem}
.filters{display:grid;grid-template-columns:repeat(auto-fit,minmax(10rem,1fr));gap:.5rem;align-items:end}.filters label{display:flex;flex-direction:column;font-size:.9rem;color:var(--muted)}
.table{overflow-x:auto}table{border-collapse:collapse;width:100%;background:#fff;font-size:.9rem}th,td{border-bottom:1px solid var(--line);padding:.35rem .5rem;text-align:left;vertical-align:top}td.wide{min-width:14rem}th{white-space:nowrap}
svg.timeline{width:100%;min-width:36rem;height:auto;background:#fff;border:1px solid var(--line);border-radius:8px;margin:0 0 1rem;font:11px system-ui,sans-serif}
svg .bar{fill:#4d8fe0}svg .bar.revoked{fill:#e09a4d}svg .approved{fill:var(--ok)}svg .revoke{stroke:var(--bad);stroke-width:2;fill:none}svg .axis,svg .more{fill:var(--muted)}svg .who{fill:var(--fg)}
@media (max-width:40rem){main{padding:.6rem}header nav{order:3;width:100%}}
`;

export const APP_JS = `'use strict';
(function () {
  var body = document.body;
  if (!body || !body.dataset.live) return;
  var seq = body.dataset.seq;
  function typing() {
    var fields = document.querySelectorAll('main textarea, main input[type=text]');
    for (var i = 0; i < fields.length; i++) if (fields[i].value) return true;
    return false;
  }
  function tick() {
    fetch('/ui/changes', { credentials: 'same-origin', headers: { accept: 'application/json' } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (j) {
        if (!j || String(j.seq) === seq || typing()) return;
        return fetch(location.href, { credentials: 'same-origin' }).then(function (p) {
          if (!p.ok) return;
          return p.text().then(function (text) {
            var next = new DOMParser().parseFromString(text, 'text/html').querySelector('main');
            var main = document.querySelector('main');
            if (next && main) { main.replaceWith(document.adoptNode(next)); seq = String(j.seq); }
          });
        });
      })
      .catch(function () {})
      .then(function () { setTimeout(tick, Number(body.dataset.poll) || 3000); });
  }
  setTimeout(tick, Number(body.dataset.poll) || 3000);
})();
`;
