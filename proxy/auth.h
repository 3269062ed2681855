/* proxy/auth.h: not written yet */
