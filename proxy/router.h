/* proxy/router.h: not written yet */
