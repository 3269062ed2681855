/*
 * conf/notes.c: owns a list of load messages (struct conf_notes): adding
 * a formatted line and freeing them all. What the lines say, and when a
 * list is cleared, belongs to the layers and to conf.c.
 */
#include "config.h"

#include "conf/notes.h"

#include <bson/bson.h>
#include <stdarg.h>

void
conf_notes_add(struct conf_notes *notes, const char *fmt, ...)
{
    va_list ap;

    notes->lines = bson_realloc(notes->lines, sizeof(char *) * (notes->n + 1));
    va_start(ap, fmt);
    notes->lines[notes->n++] = bson_strdupv_printf(fmt, ap);
    va_end(ap);
}

void
conf_notes_clear(struct conf_notes *notes)
{
    for (size_t i = 0; i < notes->n; i++) {
        bson_free(notes->lines[i]);
    }
    bson_free(notes->lines);
    notes->lines = NULL;
    notes->n = 0;
}
