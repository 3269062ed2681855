/* wire/msg.c: not written yet */
