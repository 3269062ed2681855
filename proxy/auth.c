/* proxy/auth.c: not written yet */
