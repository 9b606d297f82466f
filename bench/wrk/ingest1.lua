-- one event per request, each different (wrk -s bench/wrk/ingest1.lua)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-ndjson"
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"msg":"wrk event %d from a tiny client","level":"info","n":%d}\n', n, n)
  return wrk.format("POST", "/api/v1/load/ingest", nil, body)
end
