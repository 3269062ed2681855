/* proxy/upstream.h: not written yet */
