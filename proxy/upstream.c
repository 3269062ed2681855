/* proxy/upstream.c: not written yet */
