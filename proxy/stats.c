/* proxy/stats.c: not written yet */
