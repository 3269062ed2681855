/* proxy/admin.c: not written yet */
