/* wire/cmd.c: not written yet */
