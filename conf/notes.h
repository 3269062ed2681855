/*
 * conf/notes.h: a list of messages, one line each, in the order found:
 * the errors and warnings a configuration load collects (struct conf's
 * errors and warnings). Every layer (parse.c, file.c, env.c, cli.c) and
 * the users' checks add to it; conf.c clears it. It sits below them all,
 * so none of them calls conf.c to report.
 */
#ifndef MONGOCACHE_CONF_NOTES_H
#define MONGOCACHE_CONF_NOTES_H

#include <stddef.h>

/* Messages found while loading, one line each, in the order found. Owned by their struct conf. */
struct conf_notes {
    size_t n;
    char **lines;
};

/* Appends one printf-formatted line to notes. */
void conf_notes_add(struct conf_notes *notes, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Frees every line and leaves notes empty. */
void conf_notes_clear(struct conf_notes *notes);

#endif
