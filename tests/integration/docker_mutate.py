#!/usr/bin/env python3
"""tests/integration/docker_mutate.py: break a copy of the compose stack.

    docker_mutate.py COPY

COPY holds docker/docker-compose.yml, docker/Dockerfile and .dockerignore
(copies). Each edit below breaks exactly one of docker_check.py's assertions
(all but "services"), so test_docker.sh can show that each of them fails.
"""
import sys

TOP = sys.argv[1]


def edit(path, old, new):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if old not in text:
        sys.exit("docker_mutate.py: %r is not in %s" % (old, path))
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.replace(old, new, 1))


compose = TOP + "/docker/docker-compose.yml"
# healthchecks: Redis's disabled
edit(compose, 'test: ["CMD", "redis-cli", "ping"]\n      interval: 5s\n      timeout: 3s\n      retries: 10\n',
     'test: ["NONE"]\n')
# depends_on: the app waits for mongocache-b to start only
edit(compose, "mongocache-b:\n        condition: service_healthy",
     "mongocache-b:\n        condition: service_started")
# grace: below drain_timeout (10s)
edit(compose, "stop_grace_period: 15s", "stop_grace_period: 5s")
# secrets: the app's token gets a default
with open(compose, encoding="utf-8") as f:
    text = f.read()
start = text.rindex("${MONGOCACHE_HTTP_TOKEN:?")
end = text.index("}", start)
with open(compose, "w", encoding="utf-8") as f:
    f.write(text[:start] + "${MONGOCACHE_HTTP_TOKEN:-change-me}" + text[end + 1:])
# shared tier: no Redis URL
edit(compose, 'MONGOCACHE_REDIS: "redis://redis:6379"', 'MONGOCACHE_REDIS: ""')
# redis: AOF on
edit(compose, '"--appendonly", "no"', '"--appendonly", "yes"')

dockerfile = TOP + "/docker/Dockerfile"
# image user: a name, not a number
edit(dockerfile, "USER 10001:10001", "USER mongocache")
# image health: the HEALTHCHECK runs a file the image does not have
edit(dockerfile, "/usr/local/bin/mongocache-healthcheck\n", "/usr/local/bin/mc-health\n")
# dockerignore: .git sent
edit(TOP + "/.dockerignore", "\n.git\n", "\n")
