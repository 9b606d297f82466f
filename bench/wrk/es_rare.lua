-- the rare-term search of rare.lua through _search (wrk -s bench/wrk/es_rare.lua)
request = function()
  return wrk.format("GET", "/load/_search?q=nidoze&size=100")
end
