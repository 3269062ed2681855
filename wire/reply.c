/* wire/reply.c: not written yet */
