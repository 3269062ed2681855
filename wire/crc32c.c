/* wire/crc32c.c: not written yet */
