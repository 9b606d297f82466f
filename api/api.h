/*
 * api.h -- the outside interfaces of logdex (api/): they translate
 * requests into calls to indexer/ and searcher/ and results into JSON.
 */
#ifndef LOGDEX_API_H
#define LOGDEX_API_H

/* `logdex serve`: argc/argv start at the command's first option. */
int api_serve(int argc, char **argv);

#endif
