/* proxy/listener.h: not written yet */
