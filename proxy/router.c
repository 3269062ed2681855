/* proxy/router.c: not written yet */
