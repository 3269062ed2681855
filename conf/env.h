/* conf/env.h: not written yet */
