/* proxy/log.c: not written yet */
