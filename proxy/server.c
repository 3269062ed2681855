/* proxy/server.c: not written yet */
