-- a rotation of searches over the index "load" (wrk -s bench/wrk/search.lua)
local paths = {
  "/api/v1/load/search?q=nidoze&limit=100",
  "/api/v1/load/search?q=get&limit=100",
  "/api/v1/load/search?q=%22insufficient%20funds%22&limit=20",
  "/api/v1/load/search?q=http.status:500&limit=0",
  "/api/v1/load/search?q=level:error%20-service:payment&limit=10",
}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
