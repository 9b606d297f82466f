#!/bin/bash
# t_http_threads.sh -- tests/t_http.sh again with a thread per connection
# (`serve --http-mode threads`; the default is the event loop).
export LOGDEX_HTTP_MODE=threads
exec bash "${top_srcdir:-.}/tests/t_http.sh"
