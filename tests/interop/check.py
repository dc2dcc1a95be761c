"""Interop check: pyarrow and DuckDB read every Parquet output of twinflow, and
DuckDB computes the TwinBench reference pipeline (W, A, F, D, V) straight from
events.parquet and the catalog (sensors.csv, assets.csv) with the same results.

The SQL here never reads twinflow's outputs to compute anything: every step is
built on the W table below, computed from the raw log, and only then compared
with what `twinflow replay` wrote.

usage: check.py LOG_DIR OUT_DIR
"""
import csv
import hashlib
import hmac
import json
import struct
import math
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

log, out = Path(sys.argv[1]), Path(sys.argv[2])
summary = json.loads((out / "summary.json").read_text())

# The datasets `replay` writes (directories of part-*.parquet), by pipeline step.
DATASETS = {
    "windows": "W", "late": "W", "quarantine": "W", "seq_gaps": "verify",
    "aligned": "A", "fused": "F", "flags": "D",
    "twins/assets": "V", "twins/lines": "V", "twins/sites": "V",
    "twin_changes/assets": "V", "twin_changes/lines": "V", "twin_changes/sites": "V",
}


def parts(directory):
    """The Parquet files directly in a dataset directory, in name order."""
    return sorted(p for p in directory.glob("*.parquet") if p.is_file()) if directory.is_dir() else []


# Steps A, F, D, V report every problem they find and fail together at the end,
# so a missing dataset or key does not hide the results of the others.
problems = []


def problem(message):
    problems.append(message)
    print(f"FAIL {message}")


def present(name):
    """Whether dataset `name` was written; records a clear problem if not."""
    if parts(out / name):
        return True
    state = "has no Parquet files" if (out / name).is_dir() else "is missing"
    problem(f"output dataset {name}/ {state} (step {DATASETS[name]} of the reference pipeline)")
    return False


def summary_key(key):
    if key not in summary:
        problem(f"summary.json has no key {key!r} (keys: {sorted(summary)})")
        return None
    return summary[key]


# 1. pyarrow reads every file and dataset, with the documented schemas.
events = pq.read_table(log / "events.parquet")
expected_events = [
    ("ts_us", "int64"), ("arrival_us", "int64"), ("asset", "string"), ("sensor", "string"),
    ("kind", "string"), ("value", "double"), ("seq", "uint64"), ("quality", "uint8"), ("tag", "binary"),
]
assert [(f.name, str(f.type)) for f in events.schema] == expected_events, events.schema
assert pq.read_table(log / "truth.parquet").num_rows > 0
tables = {name: ds.dataset(out / name, format="parquet").to_table() for name in ("windows", "late", "quarantine")}
assert tables["windows"].num_rows == summary["windows"], (tables["windows"].num_rows, summary)
assert tables["late"].num_rows == summary["late_events"]
assert tables["quarantine"].num_rows == summary["quarantined"]

# Every Parquet file anywhere under OUT (datasets nest: twins/assets/, ...), each
# file alone and each directory's files as one dataset, whose parts share a schema.
dataset_dirs = sorted({p.parent for p in out.rglob("*.parquet")})
for directory in dataset_dirs:
    files = parts(directory)
    part_tables = [pq.read_table(f) for f in files]
    columns = {tuple((c.name, str(c.type)) for c in t.schema) for t in part_tables}
    assert len(columns) == 1, f"the parts of {directory} have different schemas: {columns}"
    rows = sum(t.num_rows for t in part_tables)
    table = ds.dataset([str(f) for f in files], format="parquet").to_table()
    assert table.num_rows == rows, (directory, table.num_rows, rows)
    tables.setdefault(directory.relative_to(out).as_posix(), table)

# 2. DuckDB reads them too, as one table per dataset.
con = duckdb.connect()
for directory in dataset_dirs:
    name = directory.relative_to(out).as_posix()
    n = con.execute(f"SELECT count(*) FROM read_parquet('{directory}/*.parquet')").fetchone()[0]
    assert n == tables[name].num_rows, (name, n)

# Lineage: every derived file names, in its footer, the pipeline and the source it
# was read from; DuckDB and pyarrow both read it.
for directory in dataset_dirs:
    for f in parts(directory):
        kv = dict(con.execute(f"SELECT decode(key), decode(value) FROM parquet_kv_metadata('{f}')").fetchall())
        assert kv.get("twinflow.pipeline") == summary["pipeline"].rsplit(" ", 1)[0], (f, kv)
        sources = json.loads(kv["twinflow.sources"])
        assert [Path(s["path"]).resolve() for s in sources] == [(log / "events.parquet").resolve()], (f, sources)
        assert sources[0]["rows"] == events.num_rows
        assert pq.read_metadata(f).metadata[b"twinflow.verified"] == b"true"

# 3. Verification (the spec's "Authentication tag", "Replay window" and
#    "Plausibility"), then W, in SQL. Only the tags are checked in Python, with the
#    standard library's hmac over the message the spec spells out; everything else
#    is window functions over arrival order (the file's row order).
keys = {}
for entry in json.loads((log / "keys.json").read_text()):
    keys.setdefault(entry["sensor"], []).append(bytes.fromhex(entry["key"]))
raw = pq.read_table(log / "events.parquet", columns=["sensor", "ts_us", "value", "seq", "quality", "tag"]).to_pydict()


def tag_ok(sensor, ts_us, value, seq, quality, tag):
    if tag is None:
        return False
    message = sensor.encode() + b"\0" + struct.pack("<qdQB", ts_us, value, seq, quality)
    return any(hmac.compare_digest(hmac.new(k, message, hashlib.sha256).digest()[:16], tag)
               for k in keys.get(sensor, []))


tags = pa.table({
    "pos": pa.array(range(len(raw["sensor"])), pa.int64()),
    "tag_ok": pa.array([tag_ok(*row) for row in zip(raw["sensor"], raw["ts_us"], raw["value"], raw["seq"],
                                                    raw["quality"], raw["tag"])]),
})
con.register("tags", tags)
# The spec's channel table gives the rated rates (sensors.csv has none): the flooding
# budget is twice the count per second.
RATES = {"temp-1": 10, "temp-2": 10, "temp-3": 10, "press-1": 10, "press-2": 10, "vib-1": 50, "current": 10, "flow": 1}
con.execute(f"""
CREATE TABLE limits AS
SELECT sensor, min AS lo, max AS hi, 2 * rate AS budget
FROM read_csv('{log / "sensors.csv"}', header = true) s
JOIN (SELECT unnest(map_keys(m)) AS channel, unnest(map_values(m)) AS rate FROM (SELECT MAP {{{", ".join(f"'{c}': {r}" for c, r in RATES.items())}}} AS m)) USING (channel)
""")
# A tag-valid event is replayed when an earlier tag-valid event of its sensor had
# the same seq, or its seq is more than 1024 below theirs: an event that was itself
# rejected as replayed has a seq at most the greatest, so "accepted" can be read as
# "tag-valid" in both rules.
con.execute(f"""
CREATE TABLE checked AS
WITH e AS (
  SELECT e.*, file_row_number AS pos, coalesce(t.tag_ok, false) AND l.sensor IS NOT NULL AS tag_ok,
         l.lo, l.hi, l.budget
  FROM read_parquet('{log / "events.parquet"}', file_row_number = true) e
  LEFT JOIN tags t ON t.pos = e.file_row_number LEFT JOIN limits l USING (sensor)),
r AS (
  SELECT *, row_number() OVER (PARTITION BY sensor, seq, tag_ok ORDER BY pos) AS copy,
         max(seq) OVER (PARTITION BY sensor, tag_ok ORDER BY pos ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_top,
         ts_us - arrival_us <= 5000000 AND arrival_us - ts_us <= 3600000000 AS clock_ok,
         isfinite(value) AND value BETWEEN lo AND hi AS range_ok
  FROM e),
s AS (
  SELECT *, CASE WHEN NOT tag_ok THEN 'bad_tag'
                 WHEN copy > 1 OR CAST(prev_top AS HUGEINT) - CAST(seq AS HUGEINT) > 1024 THEN 'replayed'
                 WHEN NOT clock_ok THEN 'clock'
                 WHEN NOT range_ok THEN 'out_of_range' END AS early
  FROM r)
SELECT *, CASE WHEN early IS NOT NULL THEN early
               WHEN row_number() OVER (PARTITION BY sensor, ts_us // 1000000, early IS NULL ORDER BY pos) > budget
               THEN 'flooding' END AS reason,
       tag_ok AND clock_ok AND range_ok AS moves_watermark
FROM s
""")
con.execute("""
CREATE VIEW marked AS
SELECT *, max(CASE WHEN moves_watermark THEN least(ts_us, arrival_us) END)
          OVER (ORDER BY pos ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_max
FROM checked
""")
con.execute("""
CREATE VIEW accepted AS
SELECT *, prev_max IS NOT NULL AND ts_us < prev_max - 2000000 AS late FROM marked WHERE reason IS NULL
""")
con.execute("""
CREATE TABLE w AS
SELECT sensor, (ts_us // 1000000) * 1000000 AS window_start_us, count(*) AS count, avg(value) AS mean,
       min(value) AS min, max(value) AS max, arg_max(value, (ts_us, pos)) AS last
FROM accepted WHERE NOT late GROUP BY ALL
""")
late_sql = con.execute("SELECT count(*) FROM accepted WHERE late").fetchone()[0]
reasons_sql = dict(con.execute("SELECT reason, count(*) FROM checked WHERE reason IS NOT NULL GROUP BY ALL").fetchall())
assert reasons_sql == summary["quarantined_by_reason"], (reasons_sql, summary["quarantined_by_reason"])
assert {"replayed", "bad_tag"} <= set(reasons_sql), f"the log must exercise verification: {reasons_sql}"
# Every quarantined row is there with its reason, position and original fields.
mismatched = con.execute(f"""
SELECT count(*) FROM (SELECT pos, reason, ts_us, value, seq FROM checked WHERE reason IS NOT NULL) c
FULL OUTER JOIN read_parquet('{out}/quarantine/*.parquet') q ON q.position = c.pos
WHERE c.pos IS NULL OR q.position IS NULL OR q.reason <> c.reason OR q.ts_us <> c.ts_us
   OR q.seq <> c.seq OR q.value IS DISTINCT FROM c.value
""").fetchone()[0]
assert mismatched == 0, f"{mismatched} quarantined rows differ"
windows_sql, sum_means_sql = con.execute("SELECT count(*), sum(mean) FROM w").fetchone()

assert windows_sql == summary["windows"], (windows_sql, summary["windows"])
assert late_sql == summary["late_events"], (late_sql, summary["late_events"])
assert math.isclose(sum_means_sql, summary["sum_window_means"], rel_tol=1e-6), (sum_means_sql, summary)

# 4. Row by row: the same windows with the same statistics.
mismatches = con.execute(f"""
SELECT count(*) FROM w FULL OUTER JOIN read_parquet('{out}/windows/*.parquet') t
  ON w.sensor = t.sensor AND w.window_start_us = t.window_start_us
WHERE t.sensor IS NULL OR w.sensor IS NULL OR w.count <> t.count OR w.min <> t.min OR w.max <> t.max
   OR w.last <> t.last OR abs(w.mean - t.mean) > 1e-9 * greatest(abs(w.mean), 1)
""").fetchone()[0]
assert mismatches == 0, f"{mismatches} windows differ"

# 5. A, F, D, V in SQL, built on w. Channels are columns in their order of first
#    appearance in sensors.csv; fused quantities are the kinds with >= 2 sensors on an asset.
started = time.perf_counter()
with open(log / "sensors.csv", newline="") as f:
    catalog = list(csv.DictReader(f))
channels = list(dict.fromkeys(row["channel"] for row in catalog))
per_asset_kind = {}
for row in catalog:
    per_asset_kind[(row["asset"], row["kind"])] = per_asset_kind.get((row["asset"], row["kind"]), 0) + 1
quantities = list(dict.fromkeys(kind for (_, kind), n in per_asset_kind.items() if n >= 2))
# Channels of sensors that are fused somewhere (the twin view shows their trust).
fused_channels = [ch for ch in channels
                  if any(per_asset_kind[(row["asset"], row["kind"])] >= 2
                         for row in catalog if row["channel"] == ch)]


def ident(name):
    return '"' + name.replace('"', '""') + '"'


def literal(text):
    return "'" + text.replace("'", "''") + "'"


con.execute(f"""
CREATE TABLE sensors AS SELECT * FROM read_csv('{log / "sensors.csv"}', header = true, columns = {{
  'sensor': 'VARCHAR', 'asset': 'VARCHAR', 'channel': 'VARCHAR', 'kind': 'VARCHAR',
  'sigma': 'DOUBLE', 'min': 'DOUBLE', 'max': 'DOUBLE'}})
""")
con.execute(f"CREATE TABLE assets AS SELECT * FROM read_csv('{log / 'assets.csv'}', header = true, all_varchar = true)")
# Each W row with its sensor's asset, channel, kind and sigma, and its place (rn, from 0)
# in the sensor's sequence of W rows in window order.
con.execute("""
CREATE TABLE sw AS
SELECT s.asset, w.sensor, s.channel, s.kind, s.sigma, w.window_start_us, w.mean, w.count,
       row_number() OVER (PARTITION BY w.sensor ORDER BY w.window_start_us) - 1 AS rn
FROM w JOIN sensors s USING (sensor)
""")

# A, in long form (one row per asset, window and channel): the windows are those in
# which any of the asset's sensors has a W row; each channel takes the W row of its
# sensor at or before the window (ASOF): the window's own is "measured", one whose
# start is at most 5 s earlier is "carried", else the value is null and "missing".
con.execute(f"""
CREATE TABLE a AS
WITH keys AS (SELECT DISTINCT asset, window_start_us FROM sw),
     channels AS (SELECT * FROM (VALUES {", ".join(f"({literal(c)}, {i})" for i, c in enumerate(channels))}) c(channel, position)),
     grid AS (SELECT k.asset, k.window_start_us, c.channel, c.position, s.sensor
              FROM keys k CROSS JOIN channels c
              LEFT JOIN sensors s ON s.asset = k.asset AND s.channel = c.channel)
SELECT g.asset, g.window_start_us, g.channel, g.position,
       CASE WHEN g.window_start_us - p.window_start_us <= 5000000 THEN p.mean END AS value,
       CASE WHEN p.window_start_us = g.window_start_us THEN 'measured'
            WHEN g.window_start_us - p.window_start_us <= 5000000 THEN 'carried'
            ELSE 'missing' END AS source
FROM grid g ASOF LEFT JOIN sw p ON g.sensor = p.sensor AND g.window_start_us >= p.window_start_us
""")

# F: per asset, window and redundant kind, the inverse-variance weighted mean of the
# measured W means of that kind's sensors (carried values do not count), and the
# variance of that estimate: a mean of n readings has variance sigma^2 / n.
con.execute("""
CREATE TABLE f AS
SELECT asset, window_start_us, kind AS quantity,
       sum(mean / (sigma * sigma)) / sum(1 / (sigma * sigma)) AS value,
       sum(1 / (sigma * sigma * count)) / pow(sum(1 / (sigma * sigma)), 2) AS variance,
       count(*) AS sensors
FROM sw SEMI JOIN (SELECT asset, kind FROM sensors GROUP BY ALL HAVING count(*) >= 2) USING (asset, kind)
GROUP BY ALL
""")

# D: the exponentially weighted mean and variance, in the spec's exact order of
# operations, by a recursive CTE that advances every sensor one W row per step;
# z uses the state before the row and is null while v = 0.
con.execute("""
CREATE TABLE d AS
WITH RECURSIVE ew(sensor, rn, window_start_us, x, m, v, z) AS (
  SELECT sensor, rn, window_start_us, mean, mean, 0::DOUBLE, NULL::DOUBLE FROM sw WHERE rn = 0
  UNION ALL
  SELECT n.sensor, n.rn, n.window_start_us, n.mean,
         e.m + 0.05::DOUBLE * (n.mean - e.m),
         0.95::DOUBLE * (e.v + 0.05::DOUBLE * (n.mean - e.m) * (n.mean - e.m)),
         CASE WHEN e.v > 0 THEN (n.mean - e.m) / sqrt(e.v) END
  FROM ew e JOIN sw n ON n.sensor = e.sensor AND n.rn = e.rn + 1
)
SELECT * FROM ew
""")
con.execute("""
CREATE TABLE d_flags AS
SELECT s.asset, d.sensor, d.window_start_us, d.x AS value, d.z
FROM d JOIN sensors s USING (sensor) WHERE d.rn >= 30 AND abs(d.z) > 5
""")

# V: per asset of assets.csv that has aligned rows, its latest aligned row, the fused
# values of that same window (null if none) and its number of flags.
fused_columns = ", ".join(
    f"max(f.value) FILTER (WHERE f.quantity = {literal(q)}) AS {ident('fused_' + q)}, "
    f"max(f.variance) FILTER (WHERE f.quantity = {literal(q)}) AS {ident(f'fused_{q}_variance')}"
    for q in quantities)
con.execute(f"""
CREATE TABLE v AS
WITH latest AS (SELECT asset, max(window_start_us) AS window_start_us FROM a GROUP BY asset),
     fused AS (SELECT l.asset{", " + fused_columns if fused_columns else ""}
               FROM latest l LEFT JOIN f USING (asset, window_start_us) GROUP BY l.asset),
     counts AS (SELECT asset, count(*) AS flags FROM d_flags GROUP BY asset)
SELECT x.asset, x.line, x.site, l.window_start_us, coalesce(c.flags, 0) AS flags, fused.* EXCLUDE (asset)
FROM assets x JOIN latest l USING (asset) JOIN fused USING (asset) LEFT JOIN counts c USING (asset)
""")
sql_seconds = time.perf_counter() - started

expected = {
    "aligned_rows": con.execute("SELECT count(DISTINCT (asset, window_start_us)) FROM a").fetchone()[0],
    "flags": con.execute("SELECT count(*) FROM d_flags").fetchone()[0],
    "assets_in_view": con.execute("SELECT count(*) FROM v").fetchone()[0],
}
sum_fused_temperature = con.execute("SELECT coalesce(sum(value), 0) FROM f WHERE quantity = 'temperature'").fetchone()[0]

# 6. The summary's checksums.
for key, value in expected.items():
    actual = summary_key(key)
    if actual is not None and actual != value:
        problem(f"summary.json {key} = {actual}, DuckDB computes {value}")
actual = summary_key("sum_fused_temperature")
if actual is not None and not math.isclose(actual, sum_fused_temperature, rel_tol=1e-6):
    problem(f"summary.json sum_fused_temperature = {actual!r}, DuckDB computes {sum_fused_temperature!r}")

# 7. Schemas (strings may be stored as large or dictionary-encoded strings), then row
#    by row: the same keys, sources, counts and flags exactly, values within 1e-9 relative.
def type_name(t):
    if pa.types.is_dictionary(t):
        t = t.value_type
    return "string" if pa.types.is_string(t) or pa.types.is_large_string(t) else str(t)


def check_schema(name, columns):
    schema = tables[name].schema
    actual = [(f.name, type_name(f.type)) for f in schema]
    if actual != columns:
        problem(f"{name}/ has columns {actual}, expected {columns}")
        return False
    return True


channel_columns = [c for ch in channels for c in ((ch, "double"), (f"{ch}_source", "string"))]
fused_view_columns = [c for q in quantities for c in ((f"fused_{q}", "double"), (f"fused_{q}_variance", "double"))]
trust_view_columns = [c for ch in fused_channels
                      for c in ((f"{ch}_trust", "double"), (f"{ch}_weight", "double"), (f"{ch}_state", "string"))]
imputed_view_columns = [c for ch in channels for c in ((f"{ch}_imputed", "double"), (f"{ch}_imputed_sigma", "double"),
                                                       (f"{ch}_imputed_by", "string"))]
seen_view_columns = [c for ch in channels for c in ((f"{ch}_last_seen_us", "int64"), (f"{ch}_staleness_us", "int64"))]
SCHEMAS = {
    "aligned": [("asset", "string"), ("window_start_us", "int64"), ("window_end_us", "int64")] + channel_columns,
    "fused": [("asset", "string"), ("window_start_us", "int64"), ("quantity", "string"),
              ("value", "double"), ("variance", "double"), ("lo95", "double"), ("hi95", "double"),
              ("sensors", "uint32")],
    "flags": [("asset", "string"), ("sensor", "string"), ("window_start_us", "int64"),
              ("detector", "string"), ("reason", "string"), ("value", "double"), ("score", "double"),
              ("evidence", "string")],
    "twins/assets": [("asset", "string"), ("line", "string"), ("site", "string"), ("window_start_us", "int64"),
                     ("flags", "uint64"), ("health", "string")] + channel_columns + fused_view_columns
                    + trust_view_columns + imputed_view_columns + seen_view_columns,
}

con.execute("CREATE MACRO differs(a, b) AS (a IS NULL) <> (b IS NULL) OR abs(a - b) > 1e-9 * greatest(abs(a), abs(b))")


def compare(name, query, what):
    """Runs `query` (the mismatching rows); records a problem with a few examples."""
    n = con.execute(f"SELECT count(*) FROM ({query})").fetchone()[0]
    if n:
        cursor = con.execute(f"SELECT * FROM ({query}) LIMIT 5")
        header = [c[0] for c in cursor.description]
        examples = "\n".join(f"    {dict(zip(header, row))}" for row in cursor.fetchall())
        problem(f"{name}/: {n} {what} differ from DuckDB's, e.g.\n{examples}")


def duplicates(name, table, key):
    n = con.execute(f"SELECT count(*) - count(DISTINCT ({key})) FROM {table}").fetchone()[0]
    if n:
        problem(f"{name}/: {n} duplicate rows for key ({key})")


def long_form(table):
    """A wide table with per-channel value and source columns, as (asset, window_start_us, channel, value, source)."""
    return " UNION ALL ".join(
        f"SELECT asset, window_start_us, {literal(c)} AS channel, {ident(c)} AS value, {ident(c + '_source')} AS source FROM {table}"
        for c in channels)


def load(name):
    """twinflow's dataset `name` as table "out/name"."""
    table = ident(f"out/{name}")
    con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM read_parquet('{out / name}/*.parquet')")
    return table


CHANNEL_DIFF = """
SELECT coalesce(e.asset, t.asset) AS asset, coalesce(e.window_start_us, t.window_start_us) AS window_start_us,
       coalesce(e.channel, t.channel) AS channel, e.value AS expected, e.source AS expected_source,
       t.value AS actual, t.source AS actual_source
FROM ({expected}) e FULL OUTER JOIN ({actual}) t
  ON e.asset = t.asset AND e.window_start_us = t.window_start_us AND e.channel = t.channel
WHERE e.asset IS NULL OR t.asset IS NULL OR e.source IS DISTINCT FROM t.source OR differs(e.value, t.value)
"""

if present("aligned") and check_schema("aligned", SCHEMAS["aligned"]):
    table = load("aligned")
    duplicates("aligned", table, "asset, window_start_us")
    compare("aligned", f"SELECT * FROM {table} WHERE window_end_us IS DISTINCT FROM window_start_us + 1000000",
            "rows' window_end_us (should be window_start_us + 1 s)")
    compare("aligned", CHANNEL_DIFF.format(expected="SELECT asset, window_start_us, channel, value, source FROM a",
                                           actual=long_form(table)), "(asset, window, channel) cells")

if present("fused") and check_schema("fused", SCHEMAS["fused"]):
    table = load("fused")
    duplicates("fused", table, "asset, window_start_us, quantity")
    compare("fused", f"""
SELECT coalesce(e.asset, t.asset) AS asset, coalesce(e.window_start_us, t.window_start_us) AS window_start_us,
       coalesce(e.quantity, t.quantity) AS quantity, e.value AS expected_value, t.value AS actual_value,
       e.variance AS expected_variance, t.variance AS actual_variance, e.sensors AS expected_sensors, t.sensors AS actual_sensors
FROM f e FULL OUTER JOIN {table} t
  ON e.asset = t.asset AND e.window_start_us = t.window_start_us AND e.quantity = t.quantity
WHERE e.asset IS NULL OR t.asset IS NULL OR e.sensors IS DISTINCT FROM t.sensors
   OR differs(e.value, t.value) OR differs(e.variance, t.variance)
""", "rows")
    compare("fused", f"""
SELECT * FROM {table}
WHERE differs(lo95, value - 1.959963984540054 * sqrt(variance)) OR differs(hi95, value + 1.959963984540054 * sqrt(variance))
""", "rows' 95 % intervals (value -/+ 1.96 sigma)")

if present("flags") and check_schema("flags", SCHEMAS["flags"]):
    con.execute(f"CREATE TABLE d_out AS SELECT * EXCLUDE (score), score AS z FROM {load('flags')} WHERE detector = 'ewma_z'")
    table = "d_out"
    duplicates("flags", table, "sensor, window_start_us")
    compare("flags", f"""
SELECT coalesce(e.sensor, t.sensor) AS sensor, coalesce(e.window_start_us, t.window_start_us) AS window_start_us,
       e.asset AS expected_asset, t.asset AS actual_asset, e.value AS expected_value, t.value AS actual_value,
       e.z AS expected_z, t.z AS actual_z
FROM d_flags e FULL OUTER JOIN {table} t ON e.sensor = t.sensor AND e.window_start_us = t.window_start_us
WHERE e.sensor IS NULL OR t.sensor IS NULL OR e.asset IS DISTINCT FROM t.asset
   OR differs(e.value, t.value) OR differs(e.z, t.z)
""", "flags")

if present("twins/assets") and check_schema("twins/assets", SCHEMAS["twins/assets"]):
    view = load("twins/assets")
    duplicates("twins/assets", view, "asset")
    fused_diff = " OR ".join(f"differs(e.{ident(c)}, t.{ident(c)})" for c, _ in fused_view_columns) or "false"
    fused_cols = "".join(f", e.{ident(c)} AS {ident('expected_' + c)}, t.{ident(c)} AS {ident('actual_' + c)}"
                         for c, _ in fused_view_columns)
    compare("twins/assets", f"""
SELECT coalesce(e.asset, t.asset) AS asset, e.line AS expected_line, t.line AS actual_line,
       e.site AS expected_site, t.site AS actual_site, e.window_start_us AS expected_window_start_us,
       t.window_start_us AS actual_window_start_us, e.flags AS expected_flags, t.flags AS actual_flags{fused_cols}
FROM v e FULL OUTER JOIN {view} t ON e.asset = t.asset
WHERE e.asset IS NULL OR t.asset IS NULL OR e.line IS DISTINCT FROM t.line OR e.site IS DISTINCT FROM t.site
   OR e.window_start_us IS DISTINCT FROM t.window_start_us OR e.flags IS DISTINCT FROM t.flags OR {fused_diff}
""", "assets")
    compare("twins/assets", CHANNEL_DIFF.format(
        expected="SELECT a.asset, a.window_start_us, a.channel, a.value, a.source FROM a JOIN v USING (asset, window_start_us)",
        actual=long_form(view)), "(asset, channel) cells of the latest aligned row")
    # Each sensor was last seen at its latest W row at or before the view's window.
    seen_actual = " UNION ALL ".join(
        f"SELECT asset, {literal(ch)} AS channel, {ident(ch + '_last_seen_us')} AS seen, "
        f"{ident(ch + '_staleness_us')} AS staleness FROM {view}" for ch in channels)
    compare("twins/assets", f"""
WITH expected AS (
  SELECT v.asset, c.channel, max(sw.window_start_us) AS seen,
         v.window_start_us - max(sw.window_start_us) AS staleness
  FROM v CROSS JOIN (SELECT DISTINCT channel FROM sensors) c
  LEFT JOIN sw ON sw.asset = v.asset AND sw.channel = c.channel AND sw.window_start_us <= v.window_start_us
  GROUP BY v.asset, c.channel, v.window_start_us
)
SELECT coalesce(e.asset, t.asset) AS asset, coalesce(e.channel, t.channel) AS channel,
       e.seen AS expected_seen, t.seen AS actual_seen, e.staleness AS expected_staleness, t.staleness AS actual_staleness
FROM expected e FULL OUTER JOIN ({seen_actual}) t USING (asset, channel)
WHERE e.seen IS DISTINCT FROM t.seen OR e.staleness IS DISTINCT FROM t.staleness
""", "(asset, channel) last-seen times")
    view_rows = tables["twins/assets"].num_rows
    if "assets_in_view" in summary and summary["assets_in_view"] != view_rows:
        problem(f"summary.json assets_in_view = {summary['assets_in_view']}, but twins/assets/ has {view_rows} rows")

for name in DATASETS:
    if DATASETS[name] == "V" and name != "twins/assets":
        present(name)  # only read (above) and reported when missing

# The change streams rebuild the views: summing each row's diffs over all of
# time gives the final view exactly, and at any time T every asset in the
# rebuilt view appears once, with its latest aligned row as of T.
for view in ("assets", "lines", "sites"):
    changes, final = f"out/twin_changes/{view}", f"out/twins/{view}"
    if not (present(f"twin_changes/{view}") and present(f"twins/{view}")):
        continue
    rebuilt = f"SELECT * EXCLUDE (time_us, diff) FROM {load(f'twin_changes/{view}')} GROUP BY ALL HAVING sum(diff) > 0"
    compare(f"twin_changes/{view}", f"({rebuilt} EXCEPT ALL SELECT * FROM {load(f'twins/{view}')}) "
            f"UNION ALL (SELECT * FROM {load(f'twins/{view}')} EXCEPT ALL {rebuilt})",
            "rows of the view rebuilt from its changes and of the final view")
if present("twin_changes/assets"):
    changes = load("twin_changes/assets")
    middle = con.execute(f"SELECT (min(time_us) + max(time_us)) // 2 FROM {changes}").fetchone()[0]
    compare("twin_changes/assets", f"""
WITH at_t AS (
  SELECT * EXCLUDE (time_us, diff) FROM {changes} WHERE time_us <= {middle} GROUP BY ALL HAVING sum(diff) > 0
), latest AS (SELECT asset, max(window_start_us) AS window_start_us FROM a WHERE window_start_us + 1000000 <= {middle} GROUP BY asset)
SELECT coalesce(x.asset, l.asset) AS asset, count(x.asset) AS rows_in_view,
       max(x.window_start_us) AS view_window, max(l.window_start_us) AS expected_window
FROM at_t x FULL OUTER JOIN latest l USING (asset)
GROUP BY ALL HAVING count(x.asset) <> 1 OR max(x.window_start_us) IS DISTINCT FROM max(l.window_start_us)
""", f"assets of the view rebuilt as of {middle}")

if problems:
    sys.exit(f"interop check: {len(problems)} problem(s) in steps A, F, D, V (see FAIL lines above)")

print(f"interop ok: {summary['windows']} windows, {summary['late_events']} late, "
      f"sum of means {summary['sum_window_means']:.6f} (duckdb {sum_means_sql:.6f}); "
      f"{expected['aligned_rows']} aligned rows, sum of fused temperatures {sum_fused_temperature:.6f}, "
      f"{expected['flags']} flags, {expected['assets_in_view']} assets in view "
      f"(DuckDB A, F, D, V in {sql_seconds:.2f} s)")
