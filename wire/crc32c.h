/*
 * wire/crc32c.h: CRC-32C (Castagnoli), the OP_MSG checksum.
 * Spec: source/message/OP_MSG.md ("Checksum").
 */
#ifndef MONGOCACHE_WIRE_CRC32C_H
#define MONGOCACHE_WIRE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C of data[0..len); crc32c("123456789") == 0xE3069283. */
uint32_t wire_crc32c(const uint8_t *data, size_t len);

#endif
