/* conf/file.c: not written yet */
