import http from 'node:http';
const [url, ms, tokensJson, subjectsJson] = process.argv.slice(2);
const tokens = JSON.parse(tokensJson); const subjects = JSON.parse(subjectsJson);
const u = new URL(url); const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
const t0 = performance.now(); let n = 0;
const one = (c) => new Promise((done, fail) => {
  const body = JSON.stringify({ target: 'prod-db', task: 'check-logs', publicKey: subjects[c] });
  const req = http.request({ agent, host: u.hostname, port: u.port, path: '/v1/requests', method: 'POST', headers: { authorization: `Bearer ${tokens[c]}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => { res.resume(); res.on('end', () => { n++; done(); }); });
  req.on('error', fail); req.end(body);
});
await Promise.all(Array.from({ length: 32 }, async (_, c) => { while (performance.now() - t0 < Number(ms)) await one(c); }));
console.log(JSON.stringify({ n }));
