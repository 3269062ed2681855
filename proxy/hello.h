/* proxy/hello.h: not written yet */
