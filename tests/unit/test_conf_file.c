/*
 * tests/unit/test_conf_file.c: TAP tests of conf/file.c: the config file syntax, its
 * errors with file and line, and what it refuses to read (a directory, a missing file).
 */
#include "config.h"

#include "conf/conf.h"
#include "conf/file.h"
#include "tests/unit/conf_test.h"
#include "tests/unit/tap.h"

/* ---- the config file ------------------------------------------------------ */

static void
test_file(void)
{
    const char *path = write_file(
        "good.conf",
        "# a comment\n"
        "\n"
        "   # an indented comment\n"
        "max_clients = 123\n"
        "log_level=debug\n"
        "  listen_unix = \"/tmp/with space.sock\"  # trailing comment\n"
        "pid_file = /run/a#b.pid\n"
        "connect_timeout = 2s # comment after a bare value\n"
        "buffer-limit = 1MiB\r\n"
        "http_token = \"tok\\\"en\\\\x\"\n"
        "listen = \n"
        "idle_timeout = 15m\n"
        "idle_timeout = 20m\n"
        "http_listen = '127.0.0.1:9999'",
        0600);
    struct conf *conf = conf_new();
    bson_error_t err;
    char *src;

    ok(file_load(conf, path, "flag --config", &err), "file with comments, quotes loads");
    t_is_int(conf->max_clients, 123, "bare value");
    t_is_int(conf->log_level, CONF_LOG_DEBUG, "no blanks around '='");
    t_is_str(conf->listen_unix, "/tmp/with space.sock", "double-quoted value, trailing comment");
    t_is_str(conf->pid_file, "/run/a#b.pid", "'#' not after a blank is part of a bare value");
    t_is_int(conf->connect_timeout, 2000, "comment after a bare value");
    t_is_int(conf->buffer_limit, 1 << 20, "dashed key and CRLF line end");
    t_is_str(conf->http_token, "tok\"en\\x", "escapes in double quotes");
    t_is_str(conf->listen, "", "empty value");
    t_is_int(conf->idle_timeout, 20 * 60000, "a repeated key: the later line wins");
    t_is_str(conf->http_listen, "127.0.0.1:9999", "single-quoted value, no newline at the end");
    src = bson_strdup_printf("%s:4", path);
    t_is_str(conf->source[CONF_OPT_max_clients], src, "source is FILE:LINE");
    bson_free(src);
    src = bson_strdup_printf("%s:13", path);
    t_is_str(conf->source[CONF_OPT_idle_timeout], src, "source of a repeated key is its last line");
    bson_free(src);
    ok(conf->source_kind[CONF_OPT_max_clients] == CONF_SRC_FILE, "source kind is FILE");
    t_is_str(conf->source[CONF_OPT_drain_timeout], "default", "unset options stay default");
    conf_destroy(conf);

    static const struct {
        const char *name;
        const char *text;
        const char *want; /* after "PATH" */
    } bad[] = {
        {"unknown.conf", "# good\nmax_clients = 5\nmax_client = 5\n",
         ":3: unknown option \"max_client\""},
        {"noeq.conf", "\n\nlisten 127.0.0.1:1\n", ":3: expected \"name = value\""},
        {"noname.conf", "= 5\n", ":1: expected \"name = value\""},
        {"unterminated.conf", "pid_file = \"/run/x.pid\n",
         ":1: missing closing quote for pid_file"},
        {"after.conf", "pid_file = \"/a\" b\n", ":1: unexpected text after the closing quote"},
        {"badvalue.conf", "\nmax_bson_depth = 201\n",
         "invalid value \"201\" for max_bson_depth (from PATH:2): expected an integer from 1 to "
         "200"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *p = write_file(bad[i].name, bad[i].text, 0600);
        char *want;
        const char *tpl = strstr(bad[i].want, "PATH");

        if (tpl != NULL) {
            want = bson_strdup_printf("%.*s%s%s", (int)(tpl - bad[i].want), bad[i].want, p,
                                      tpl + 4);
        } else {
            want = bson_strdup_printf("%s%s", p, bad[i].want);
        }
        conf = conf_new();
        memset(&err, 0, sizeof err);
        ok(!file_load(conf, p, "flag --config", &err) && strstr(err.message, want),
             "%s refused: %s", bad[i].name, err.message);
        bson_free(want);
        conf_destroy(conf);
    }

    conf = conf_new();
    ok(!file_load(conf, "/nonexistent/mongocache.conf", "env MONGOCACHE_CONFIG", &err) &&
             strstr(err.message, "\"/nonexistent/mongocache.conf\" (from env MONGOCACHE_CONFIG)"),
         "a missing file is an error naming it and where its name came from: %s", err.message);
    ok(!file_load(conf, tmpdir, "flag --config", &err),
         "a directory is refused: %s", err.message);
    conf_destroy(conf);
}

int
main(void)
{
    conf_test_begin();
    test_file();
    return conf_test_end();
}
