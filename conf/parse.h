/* conf/parse.h: not written yet */
