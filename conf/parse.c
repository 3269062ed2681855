/* conf/parse.c: not written yet */
