#!/usr/bin/env python3
"""docker/compose_plain.py: the compose stack, translated for plain processes.

    compose_plain.py RESOLVED.yml > plain.sh

RESOLVED.yml is the output of `docker-compose -f docker/docker-compose.yml
config` (variables substituted, anchors merged). Prints bash assignments that
docker/run-plain.sh sources, so that the plain-process twin runs with the
compose file's own settings:

  REDIS_PORT, REDIS_ARGS=(...)   the redis service's command, minus the program
  MONGO_PORT                     where FerretDB stands in for the mongo service
  PROXY_NAMES=(...)              the services built from docker/Dockerfile
  PROXY_ENV_<i>=(K=V ...)        each one's environment
  PROXY_PORT_<i>, PROXY_HTTP_<i> its MongoDB and HTTP ports on 127.0.0.1
  PROXY_HEALTH_<i>               the path its healthcheck asks for
  PROXY_GRACE_<i>                its stop_grace_period, in seconds
  APP_ENV=(K=V ...)              the app's environment (minus DEMO_* pacing)

Addresses are rewritten the one way a container network maps to loopback:
"SERVICE:PORT" (another service) and "0.0.0.0:PORT" (the service itself)
become "127.0.0.1:P", one free port P for each service and port. Nothing
else is changed. The functions are also used by tests/integration/docker_check.py.
"""
import re
import shlex
import socket
import sys

import yaml

DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "ns": 1e-9}


def duration_seconds(value):
    """Seconds in a compose duration ("1m30s", "15s", "500ms") or a
    mongocache one ("10s", "2m", "10": seconds)."""
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|ns|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError("not a duration: %r" % (value,))
    return sum(float(n) * DURATION_UNITS[u] for n, u in parts)


def env_dict(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        out = {}
        for item in env:
            key, _, val = item.partition("=")
            out[key] = val
        return out
    return {k: "" if v is None else str(v) for k, v in env.items()}


def image_name(service):
    return str(service.get("image") or "").split(":")[0].split("/")[-1]


def is_proxy(service):
    build = service.get("build")
    return isinstance(build, dict) and str(build.get("dockerfile", "")).endswith("docker/Dockerfile")


def roles(compose):
    """(mongo, redis, proxies, app) service names."""
    services = compose["services"]
    mongo = [n for n, s in services.items() if image_name(s) == "mongo"]
    redis = [n for n, s in services.items() if image_name(s) == "redis"]
    proxies = sorted(n for n, s in services.items() if is_proxy(s))
    app = [n for n in services if n not in mongo + redis + proxies]
    if len(mongo) != 1 or len(redis) != 1 or not proxies or len(app) != 1:
        raise ValueError("expected one mongo, one redis, mongocache proxies and one app; got "
                         "mongo=%s redis=%s proxies=%s others=%s" % (mongo, redis, proxies, app))
    return mongo[0], redis[0], proxies, app[0]


def free_port(taken):
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in taken:
            taken.add(port)
            return port


class Ports:
    """One loopback port for each (service, container port)."""

    def __init__(self, names):
        self.names = names
        self.map = {}
        self.taken = set()

    def get(self, service, port):
        key = (service, int(port))
        if key not in self.map:
            self.map[key] = free_port(self.taken)
        return self.map[key]

    def rewrite(self, own, value):
        """value with "SERVICE:PORT" and "0.0.0.0:PORT" (own) mapped to 127.0.0.1."""
        names = "|".join(re.escape(n) for n in sorted(self.names, key=len, reverse=True))
        pattern = re.compile(r"(?<![\w.-])(%s|0\.0\.0\.0):(\d+)(?![\w.-])" % names)

        def sub(m):
            service = own if m.group(1) == "0.0.0.0" else m.group(1)
            return "127.0.0.1:%d" % self.get(service, m.group(2))

        return pattern.sub(sub, value)


def healthcheck_path(service):
    test = (service.get("healthcheck") or {}).get("test") or []
    if isinstance(test, list) and len(test) >= 2 and str(test[1]).endswith("mongocache-healthcheck"):
        return str(test[2]) if len(test) > 2 else "/readyz"
    raise ValueError("a proxy's healthcheck is not mongocache-healthcheck: %r" % (test,))


def bash_array(name, items):
    return "%s=(%s)" % (name, " ".join(shlex.quote(str(i)) for i in items))


def translate(compose):
    services = compose["services"]
    mongo, redis, proxies, app = roles(compose)
    ports = Ports(list(services))
    lines = []
    command = services[redis].get("command") or ["redis-server"]
    if isinstance(command, str):
        command = shlex.split(command)
    if command and str(command[0]).endswith("redis-server"):
        command = command[1:]
    lines.append("REDIS_PORT=%d" % ports.get(redis, 6379))
    lines.append(bash_array("REDIS_ARGS", command))
    lines.append("MONGO_PORT=%d" % ports.get(mongo, 27017))
    lines.append(bash_array("PROXY_NAMES", proxies))
    for i, name in enumerate(proxies):
        env = {k: ports.rewrite(name, v) for k, v in env_dict(services[name]).items()}
        lines.append(bash_array("PROXY_ENV_%d" % i, ["%s=%s" % kv for kv in sorted(env.items())]))
        lines.append("PROXY_PORT_%d=%d" % (i, env_port(env, "MONGOCACHE_LISTEN")))
        lines.append("PROXY_HTTP_%d=%d" % (i, env_port(env, "MONGOCACHE_HTTP_LISTEN")))
        lines.append("PROXY_HEALTH_%d=%s" % (i, shlex.quote(healthcheck_path(services[name]))))
        grace = duration_seconds(services[name].get("stop_grace_period", "10s"))
        lines.append("PROXY_GRACE_%d=%d" % (i, int(grace + 0.999)))
    app_env = {k: ports.rewrite(app, v) for k, v in env_dict(services[app]).items()
               if k not in ("DEMO_ROUNDS", "DEMO_ROUND_PAUSE_MS", "DEMO_HEALTH_FILE")}
    lines.append(bash_array("APP_ENV", ["%s=%s" % kv for kv in sorted(app_env.items())]))
    return lines


def env_port(env, key):
    """P in env[key], an address rewritten to 127.0.0.1:P."""
    value = env.get(key, "")
    m = re.fullmatch(r"127\.0\.0\.1:(\d+)", value)
    if not m:
        raise ValueError("%s=%r is not an address the twin can map" % (key, value))
    return int(m.group(1))


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: compose_plain.py RESOLVED.yml\n")
        return 2
    with open(argv[1], encoding="utf-8") as f:
        compose = yaml.safe_load(f)
    try:
        lines = translate(compose)
    except ValueError as e:
        sys.stderr.write("compose_plain.py: %s\n" % e)
        return 1
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
