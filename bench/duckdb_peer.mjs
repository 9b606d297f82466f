// bench/duckdb_peer.mjs CORPUS RUNS DBFILE -- the DuckDB peer of bench/run.
// Loads the NDJSON lines into a table (the raw line plus the main fields,
// taken out with DuckDB's JSON functions), then times the questions:
// keyword questions are scans (regexp word match, case-folded: DuckDB has
// no full-text index offline), aggregations are its columnar best.
// Prints one JSON object: {load_s, bytes, q: {name: [count, median, p95]}}.
import { DuckDBInstance } from "@duckdb/node-api";
import fs from "node:fs";

const [corpus, runsArg, dbfile] = process.argv.slice(2);
const runs = Number(runsArg);
const T0 = 1717243200000, T1 = 1717243500000;
for (const f of [dbfile, dbfile + ".wal"]) if (fs.existsSync(f)) fs.unlinkSync(f);
const inst = await DuckDBInstance.create(dbfile);
const con = await inst.connect();
const now = () => performance.now();

let t = now();
await con.run(`CREATE TABLE ev AS
  SELECT epoch_ms(CAST(strptime(json_extract_string(raw, '$."@timestamp"'), '%Y-%m-%dT%H:%M:%S.%gZ') AS TIMESTAMP)) AS ts,
         json_extract_string(raw, '$.service') AS service, json_extract_string(raw, '$.level') AS level,
         TRY_CAST(json_extract(raw, '$.http.status') AS INTEGER) AS status,
         TRY_CAST(json_extract(raw, '$.http.duration_ms') AS DOUBLE) AS duration, raw
  FROM read_csv('${corpus}', columns = {'raw': 'VARCHAR'}, delim = '\x01', quote = '', escape = '',
                header = false, auto_detect = false)`);
await con.run("CHECKPOINT");
const load_s = (now() - t) / 1000;

const word = (w) => `regexp_matches(raw, '(?i)\\b${w}\\b')`;
const Q = {
  "rare token, newest 100": [`SELECT count(*) FROM ev WHERE ${word("nidoze")}`,
    `SELECT raw FROM ev WHERE ${word("nidoze")} ORDER BY ts DESC LIMIT 100`],
  "common token, newest 100": [`SELECT count(*) FROM ev WHERE ${word("get")}`,
    `SELECT raw FROM ev WHERE ${word("get")} ORDER BY ts DESC LIMIT 100`],
  "common token, count": [`SELECT count(*) FROM ev WHERE ${word("get")}`, null],
  "phrase": [`SELECT count(*) FROM ev WHERE ${word("insufficient\\W+funds")}`,
    `SELECT raw FROM ev WHERE ${word("insufficient\\W+funds")} ORDER BY ts DESC LIMIT 100`],
  "field:value, count": ["SELECT count(*) FROM ev WHERE level = 'ERROR'", null],
  "token in a 5-minute range": [`SELECT count(*) FROM ev WHERE ts >= ${T0} AND ts < ${T1} AND ${word("get")}`,
    `SELECT raw FROM ev WHERE ts >= ${T0} AND ts < ${T1} AND ${word("get")} ORDER BY ts DESC LIMIT 100`],
  "per-minute histogram": ["SELECT ts // 60000 AS m, count(*) FROM ev GROUP BY m", null],
  "terms top 10 (service)": ["SELECT service, count(*) AS c FROM ev WHERE service IS NOT NULL GROUP BY service ORDER BY c DESC LIMIT 10", null],
  "p95 of http.duration_ms": ["SELECT quantile_disc(duration, 0.95) FROM ev", null],
};
const q = {};
for (const [name, [countSql, topSql]] of Object.entries(Q)) {
  let count = null;
  if (countSql.startsWith("SELECT count(*)")) {
    const r = await con.runAndReadAll(countSql);
    count = Number(r.getRows()[0][0]);
  }
  const sql = topSql ?? countSql;
  await con.runAndReadAll(sql); // warm-up
  const times = [];
  for (let i = 0; i < runs; i++) {
    t = now();
    const r = await con.runAndReadAll(sql);
    r.getRows();
    times.push(now() - t);
  }
  times.sort((a, b) => a - b);
  const med = runs % 2 ? times[(runs - 1) / 2] : (times[runs / 2 - 1] + times[runs / 2]) / 2;
  q[name] = [count, med, times[Math.min(runs - 1, Math.round(0.95 * (runs - 1)))]];
}
con.closeSync?.();
const bytes = fs.statSync(dbfile).size + (fs.existsSync(dbfile + ".wal") ? fs.statSync(dbfile + ".wal").size : 0);
console.log(JSON.stringify({ load_s, bytes, q }));
