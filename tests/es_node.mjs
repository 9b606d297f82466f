// es_node.mjs URL -- the official Node.js client (@elastic/elasticsearch 8,
// from npm) against a logdex server: its bulk helper (gzip), search, count,
// msearch, search_after and the scroll helper, each checked against what
// was sent (TAP on standard output).  Run by tests/t_es_node.sh.
import { createRequire } from 'node:module';
const require = createRequire(process.env.LOGDEX_NPM + '/');
const { Client } = require('@elastic/elasticsearch');

let n = 0, failed = 0;
function ok(cond, name, detail) {
  n++;
  if (cond) console.log(`ok ${n} - ${name}`);
  else {
    failed++;
    console.log(`not ok ${n} - ${name}`);
    if (detail !== undefined) console.log('# ' + JSON.stringify(detail).slice(0, 2000));
  }
}

const url = process.argv[2];
const client = new Client({ node: url, compression: true });
const BASE = Date.UTC(2024, 4, 1);
const levels = ['info', 'warn', 'error'];
const events = [];
for (let i = 0; i < 1500; i++) {
  events.push({ '@timestamp': new Date(BASE + i * 61003 + (i * 7919) % 1000).toISOString(), n: i,
                level: levels[(i * 7) % 3], msg: `request ${i % 2 ? 'served' : 'failed'} in ${i % 97} ms`,
                latency_ms: (i * 37) % 1000, svc: { name: 'svc' + (i % 4) } });
}
const newest = (evs) => [...evs].sort((a, b) => Date.parse(b['@timestamp']) - Date.parse(a['@timestamp']));

try {
  const info = await client.info();
  ok(info.version.number.startsWith('8.'), 'info: version 8.x (the client checks X-Elastic-Product)', info.version);

  let dropped = 0;
  const res = await client.helpers.bulk({
    datasource: events, flushBytes: 100000, concurrency: 3,
    onDocument(doc) { return doc.n % 2 ? { index: { _index: 'node-app' } } : { create: { _index: 'node-app', _id: 'n' + doc.n } }; },
    onDrop() { dropped++; },
  });
  ok(res.successful === events.length && res.failed === 0 && dropped === 0, 'helpers.bulk: every document stored', res);
  const res2 = await client.helpers.bulk({
    datasource: events.filter((e) => e.n % 2 === 0), flushBytes: 50000,
    onDocument(doc) { return { create: { _index: 'node-app', _id: 'n' + doc.n } }; },
    onDrop(d) { dropped++; if (d.status !== 409) dropped += 1e6; },
  });
  ok(res2.failed === events.length / 2 && dropped === events.length / 2,
     'helpers.bulk again with the same _ids: each create dropped as a 409', { res2, dropped });

  const c = await client.count({ index: 'node-app', query: { term: { 'level.keyword': 'error' } } });
  ok(c.count === events.filter((e) => e.level === 'error').length, 'count with a term query', c);

  const want = newest(events.filter((e) => e.msg.includes('failed') && e.latency_ms >= 500));
  const s = await client.search({ index: 'node-app', size: 10, track_total_hits: true,
    query: { bool: { must: [{ match: { msg: 'failed' } }], filter: [{ range: { latency_ms: { gte: 500 } } }] } } });
  ok(s.hits.total.value === want.length && JSON.stringify(s.hits.hits.map((h) => h._source.n)) ===
     JSON.stringify(want.slice(0, 10).map((e) => e.n)), 'search: total and the newest 10', { total: s.hits.total, want: want.length });

  const m = await client.msearch({ searches: [
    { index: 'node-app' }, { size: 0, query: { match: { level: 'warn' } } },
    { index: 'node-app' }, { size: 0, aggs: { l: { terms: { field: 'level.keyword' } } } },
  ] });
  const warn = events.filter((e) => e.level === 'warn').length;
  const buckets = Object.fromEntries(m.responses[1].aggregations.l.buckets.map((b) => [b.key, b.doc_count]));
  ok(m.responses[0].hits.total.value === warn && buckets.warn === warn &&
     buckets.info === events.filter((e) => e.level === 'info').length, 'msearch: a count and a terms aggregation', m.responses.map((r) => r.status));

  let after, seen = [];
  for (;;) {
    const r = await client.search({ index: 'node-app', size: 128, sort: [{ '@timestamp': 'desc' }],
      query: { match: { level: 'info' } }, ...(after ? { search_after: after } : {}) });
    if (!r.hits.hits.length) break;
    seen.push(...r.hits.hits.map((h) => h._source.n));
    after = r.hits.hits[r.hits.hits.length - 1].sort;
  }
  const infos = newest(events.filter((e) => e.level === 'info')).map((e) => e.n);
  ok(JSON.stringify(seen) === JSON.stringify(infos), 'search_after walks every match once, newest first', { seen: seen.length, want: infos.length });

  seen = [];
  for await (const doc of client.helpers.scrollDocuments({ index: 'node-app', size: 200, query: { match_all: {} } }))
    seen.push(doc.n);
  ok(seen.length === events.length && new Set(seen).size === events.length, 'helpers.scrollDocuments: every event once', seen.length);

  const g = await client.get({ index: 'node-app', id: 'n42' });
  ok(g.found && g._source.n === 42, 'get by _id', g);
  try {
    await client.search({ index: 'node-app', query: { nosuch: {} } });
    ok(false, 'a bad query is an error');
  } catch (e) {
    ok(e.meta && e.meta.statusCode === 400 && e.meta.body.error.type === 'parsing_exception', 'a bad query: ResponseError 400 parsing_exception', e.meta && e.meta.body);
  }
} catch (e) {
  ok(false, 'no unexpected exception', String(e && e.stack || e));
}
console.log(`1..${n}`);
process.exit(failed ? 1 : 0);
