/* proxy/server.h: not written yet */
