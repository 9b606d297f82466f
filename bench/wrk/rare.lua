-- one rare-term search, again and again (wrk -s bench/wrk/rare.lua)
request = function()
  return wrk.format("GET", "/api/v1/load/search?q=nidoze&limit=100")
end
