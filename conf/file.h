/* conf/file.h: not written yet */
