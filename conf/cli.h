/* conf/cli.h: not written yet */
