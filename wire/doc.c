/* wire/doc.c: not written yet */
