/* conf/env.c: not written yet */
