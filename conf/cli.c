/* conf/cli.c: not written yet */
