/* proxy/admin.h: not written yet */
