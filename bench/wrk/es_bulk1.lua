-- one event per _bulk request, each different (wrk -s bench/wrk/es_bulk1.lua):
-- the same events as ingest1.lua, through the Elasticsearch-compatible route
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-ndjson"
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"index":{}}\n{"msg":"wrk event %d from a tiny client","level":"info","n":%d}\n', n, n)
  return wrk.format("POST", "/load/_bulk", nil, body)
end
