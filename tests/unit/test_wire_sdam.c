/*
 * tests/unit/test_wire_sdam.c: owns the tests of wire/sdam.c: which replies
 * say "not writable primary", "node is recovering" or "shutting down"
 * (server-discovery-and-monitoring.md's lists, its message fallback only
 * without a code, writeConcernError read, writeErrors not).
 */
#include "config.h"

#include "tests/unit/tap.h"
#include "tests/unit/json.h"
#include "wire/sdam.h"

struct sdam_case {
    const char *reply; /* relaxed JSON, single quotes */
    enum wire_sdam_error want;
    int32_t code;
    const char *name;
};

static const struct sdam_case cases[] = {
    {"{'ok': 0, 'code': 10107, 'errmsg': 'not primary'}", WIRE_SDAM_NOT_PRIMARY, 10107,
     "NotWritablePrimary"},
    {"{'ok': 0.0, 'errmsg': 'x', 'code': 13435}", WIRE_SDAM_NOT_PRIMARY, 13435,
     "NotPrimaryNoSecondaryOk"},
    {"{'ok': 0, 'code': 10058}", WIRE_SDAM_NOT_PRIMARY, 10058, "LegacyNotPrimary"},
    {"{'ok': 0, 'code': 11602}", WIRE_SDAM_RECOVERING, 11602, "InterruptedDueToReplStateChange"},
    {"{'ok': 0, 'code': 13436}", WIRE_SDAM_RECOVERING, 13436, "NotPrimaryOrSecondary"},
    {"{'ok': 0, 'code': 189}", WIRE_SDAM_RECOVERING, 189, "PrimarySteppedDown"},
    {"{'ok': 0, 'code': 11600}", WIRE_SDAM_SHUTDOWN, 11600, "InterruptedAtShutdown"},
    {"{'ok': 0, 'code': 91}", WIRE_SDAM_SHUTDOWN, 91, "ShutdownInProgress"},
    {"{'ok': 0, 'code': {'$numberLong': '10107'}}", WIRE_SDAM_NOT_PRIMARY, 10107,
     "an int64 code"},
    {"{'ok': 0, 'code': 10107.0}", WIRE_SDAM_NOT_PRIMARY, 10107, "an integral double code"},
    {"{'ok': 0, 'code': {'$numberLong': '4294977403'}}", WIRE_SDAM_NONE, 0,
     "2^32 + 10107 as an int64 is no code (not cut to 10107)"},
    {"{'ok': 0, 'code': {'$numberDouble': 'NaN'}}", WIRE_SDAM_NONE, 0, "a NaN code is no code"},
    {"{'ok': 0, 'code': 1e300}", WIRE_SDAM_NONE, 0, "1e300 is no code"},
    {"{'ok': 0, 'code': 10107.5}", WIRE_SDAM_NONE, 0, "10107.5 is no code"},
    {"{'ok': 0, 'errmsg': 'not master'}", WIRE_SDAM_NOT_PRIMARY, 0, "no code: 'not master'"},
    {"{'ok': 0, 'errmsg': 'node is recovering'}", WIRE_SDAM_RECOVERING, 0,
     "no code: 'node is recovering'"},
    {"{'ok': 0, 'errmsg': 'not master or secondary; cannot ...'}", WIRE_SDAM_RECOVERING, 0,
     "no code: 'not master or secondary' before 'not master'"},
    {"{'ok': 0, 'code': 1, 'errmsg': 'not master'}", WIRE_SDAM_NONE, 0,
     "a code decides: the message is not read"},
    {"{'ok': 0, 'code': 11000, 'errmsg': 'E11000 duplicate key'}", WIRE_SDAM_NONE, 0,
     "another error"},
    {"{'ok': 1, 'code': 10107}", WIRE_SDAM_NONE, 0, "ok:1 with a stray code"},
    {"{'ok': 1, 'n': 0, 'writeConcernError': {'code': 91, 'errmsg': 'shutting down'}}",
     WIRE_SDAM_SHUTDOWN, 91, "writeConcernError: ShutdownInProgress"},
    {"{'ok': 1, 'writeConcernError': {'code': 11602, 'errmsg': 'x'}}", WIRE_SDAM_RECOVERING,
     11602, "writeConcernError: InterruptedDueToReplStateChange"},
    {"{'ok': 1, 'writeConcernError': {'code': 64, 'errmsg': 'waiting for replication'}}",
     WIRE_SDAM_NONE, 0, "writeConcernError: WriteConcernFailed is not one"},
    {"{'ok': 1, 'n': 0, 'writeErrors': [{'index': 0, 'code': 10107, 'errmsg': 'not master'}]}",
     WIRE_SDAM_NONE, 0, "writeErrors are never read"},
    {"{'ok': 1, 'n': 1}", WIRE_SDAM_NONE, 0, "a success"},
    {"{}", WIRE_SDAM_NONE, 0, "an empty document"},
};

int
main(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bson_t *reply = json(cases[i].reply);
        int32_t code = -1;
        enum wire_sdam_error got = wire_sdam_classify(reply, &code);

        ok(got == cases[i].want && code == cases[i].code, "%s: %d (code %d)", cases[i].name,
           (int)got, (int)code);
        bson_destroy(reply);
    }
    is_str(wire_sdam_name(WIRE_SDAM_NOT_PRIMARY), "NotWritablePrimary", "names");
    is_str(wire_sdam_name(WIRE_SDAM_NONE), "", "no name for none");
    return done_testing();
}
