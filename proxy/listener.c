/* proxy/listener.c: not written yet */
