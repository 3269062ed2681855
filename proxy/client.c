/* proxy/client.c: not written yet */
