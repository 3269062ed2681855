/* proxy/stats.h: not written yet */
