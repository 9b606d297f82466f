/* t_query.c -- the query parser: trees, precedence, errors with positions. */
#include "searcher/srch.h"
#include "tests/tap.h"

static seg_tok *tok;

static const char *tree(const char *q)
{
    static char out[2048];
    srch_query *p;
    seg_err e = {0};
    if (srch_query_parse(q, strlen(q), tok, &p, &e) != SEG_OK) {
        snprintf(out, sizeof out, "ERROR %ld: %s", e.pos, e.msg);
        return out;
    }
    seg_buf b = {0};
    srch_query_dump(p, &b);
    snprintf(out, sizeof out, "%.*s", (int)b.n, (const char *)b.p);
    seg_buf_free(&b);
    srch_query_free(p);
    return out;
}

#define Q(q, want) is_str(tree(q), want, "parse " q)

static long err_pos(const char *q)
{
    srch_query *p;
    seg_err e = {0};
    if (srch_query_parse(q, strlen(q), tok, &p, &e) == SEG_OK) {
        srch_query_free(p);
        return 0;
    }
    return e.code == SEG_EQUERY ? e.pos : -1;
}

int main(void)
{
    tok = seg_tok_new();
    Q("", "(ALL)");
    Q("  *  ", "(ALL)");
    Q("Error", "(TEXT error)");
    Q("db-01", "(TEXT db 01)");
    Q("\"Connection Refused\"", "(TEXT connection refused)");
    Q("a b", "(AND (TEXT a) (TEXT b))");
    Q("a AND b AND c", "(AND (TEXT a) (TEXT b) (TEXT c))");
    Q("a OR b c", "(OR (TEXT a) (AND (TEXT b) (TEXT c)))");
    Q("NOT a b", "(AND (NOT (TEXT a)) (TEXT b))");
    Q("-a OR b", "(OR (NOT (TEXT a)) (TEXT b))");
    Q("(a OR b) c", "(AND (OR (TEXT a) (TEXT b)) (TEXT c))");
    Q("NOT NOT a", "(NOT (NOT (TEXT a)))");
    Q("status:500", "(TEXT @status 500 =500)");
    Q("status:5e2", "(TEXT @status 5e2 =500)");
    Q("ok:true", "(TEXT @ok true =true)");
    Q("http.status:\"404\"", "(TEXT @http.status 404)");
    Q("msg:\"a b\"", "(TEXT @msg a b)");
    Q("latency:>=1.5", "(RANGE @latency [1.5,inf])");
    Q("latency:<10", "(RANGE @latency [-inf,10})");
    Q("n:[1 TO 5]", "(RANGE @n [1,5])");
    Q("n:{1 TO *]", "(RANGE @n {1,inf])");
    /* wildcards within a token, regular expressions */
    Q("*ileBeat", "(WILD  ==*ilebeat)");
    Q("msg:fo?bar", "(WILD @msg fo ==fo?bar)");
    Q("Foo*bar", "(WILD foo ==foo*bar)");
    Q("/metric.*/", "(REGEX  ==metric.*)");
    Q("path:/a\\/b+/ x", "(AND (REGEX @path  ==a/b+) (TEXT x))");
    Q("m:/(a|b c)/", "(REGEX @m  ==(a|b c))");
    is_int(err_pos("x AND a.b*c"), 7, "a pattern holding a separator: error at its position");
    is_int(err_pos("x /abc"), 3, "an unterminated /regex/: error at its slash");
    is_int(err_pos("/a(/"), 1, "a regex that does not compile: error at its slash");
    is_int(err_pos("**"), 1, "a pattern of wildcards only is refused");
    Q("n:[* TO 5}", "(RANGE @n [-inf,5})");
    Q("wor*", "(PREFIX wor)");
    Q("host.name:web*", "(PREFIX @host.name web)");
    Q("user:*", "(EXISTS @user)");
    Q("@timestamp:2024*", "(PREFIX @@timestamp 2024)");
    Q("Straße", "(TEXT strasse)");
    Q("東京都", "(TEXT 東京 都)");
    Q("a-b OR c", "(OR (TEXT a b) (TEXT c))");
    Q("and or", "(AND (TEXT and) (TEXT or))");

    is_int(err_pos("a AND"), 6, "trailing AND: position after it");
    is_int(err_pos("(a OR b"), 1, "unbalanced '(' at its position");
    is_int(err_pos("a )"), 3, "stray ')'");
    is_int(err_pos("\"abc"), 1, "unterminated quote");
    is_int(err_pos("x:[1 TO]"), 8, "range without upper bound");
    is_int(err_pos("x:[a TO 5]"), 4, "non-numeric range bound");
    is_int(err_pos("x:>abc"), 4, "non-numeric comparison");
    is_int(err_pos("!!!"), 1, "no searchable characters");
    is_int(err_pos("a:"), 3, "missing value after field");
    is_int(err_pos("()"), 1, "empty parentheses");
    is_int(err_pos("OR a"), 1, "leading OR");
    is_int(err_pos("foo.ba*"), 1, "a prefix must be one token");
    is_int(err_pos("x:[1 TO 5] y:0x10"), 0, "0x10 is text, not an error");
    char deep[400];
    memset(deep, '(', 200);
    deep[200] = 'a';
    memset(deep + 201, ')', 150);
    deep[351] = 0;
    ok(err_pos(deep) > 0, "deep nesting is refused, not a stack overflow");

    int64_t t, now = 1704164645000000000LL;
    seg_err e = {0};
    ok(srch_parse_time("now-15m", now, &t, &e) == 0 && t == now - 900000000000LL, "now-15m");
    ok(srch_parse_time("now", now, &t, &e) == 0 && t == now, "now");
    ok(srch_parse_time("1704164645", now, &t, &e) == 0 && t == now, "epoch seconds");
    ok(srch_parse_time("1704164645000", now, &t, &e) == 0 && t == now, "epoch ms");
    ok(srch_parse_time("2024-01-02T03:04:05Z", now, &t, &e) == 0 && t == now, "RFC 3339");
    ok(srch_parse_time("now-1w", now, &t, &e) == 0 && t == now - 7 * 86400000000000LL, "now-1w (weeks)");
    ok(srch_parse_time("2024-01-02", now, &t, &e) == 0 && t == 1704153600000000000LL, "a bare date is its midnight UTC");
    ok(srch_parse_time("2024-01-02 03:04:05", now, &t, &e) == 0 && t == now, "no zone: UTC");
    seg_err e4 = {0};
    ok(srch_parse_time("2024-13-02", now, &t, &e4) == SEG_EQUERY, "a bad date refused");
    seg_err e2 = {0};
    ok(srch_parse_time("yesterday", now, &t, &e2) == SEG_EQUERY, "bad time refused");
    seg_err e3 = {0};
    ok(srch_parse_time("now-5y", now, &t, &e3) == SEG_EQUERY, "unknown unit refused");
    seg_tok_free(tok);
    return tap_done();
}
