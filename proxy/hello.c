/* proxy/hello.c: not written yet */
