/* conf/conf.c: not written yet */
