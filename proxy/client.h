/* proxy/client.h: not written yet */
