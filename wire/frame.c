/* wire/frame.c: not written yet */
