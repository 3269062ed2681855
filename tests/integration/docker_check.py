#!/usr/bin/env python3
"""tests/integration/docker_check.py: assertions on the compose stack.

    docker_check.py TOP RESOLVED.yml

TOP is the source tree; RESOLVED.yml is `docker-compose config` of
TOP/docker/docker-compose.yml. Prints unnumbered TAP lines, then its plan
(mctest.py; test_docker.sh numbers them):

  services       mongo:7, redis:7, two or more mongocache proxies built from
                 docker/Dockerfile, one app with a connection string per proxy
  healthchecks   every service has one, not disabled
  depends_on     every dependency waits for condition: service_healthy
  grace          each proxy's stop_grace_period is above its drain_timeout
  secrets        the raw file gives MONGOCACHE_HTTP_TOKEN and
                 MONGOCACHE_CACHE_KEY_SECRET no default (${VAR:?...} only)
  shared tier    the proxies share one Redis URL and one cache_key_secret
  redis          no RDB snapshots, no AOF, a maxmemory, volatile-lru
  image user     the runtime stage's USER is numeric and not root
  image health   the runtime stage has a HEALTHCHECK running a file it copies in
  dockerignore   the build contexts leave out .git, .tools, build trees, node_modules,
                 docker/.env (the compose secrets)
"""
import os
import re
import sys

import yaml

TOP = sys.argv[1]
sys.path.insert(0, os.path.join(TOP, "docker"))
import compose_plain  # noqa: E402  (docker/compose_plain.py)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402
from mctest import tap  # noqa: E402


def option_default(name):
    """An option's default from conf/options.def."""
    with open(os.path.join(TOP, "conf", "options.def"), encoding="utf-8") as f:
        m = re.search(r'CONF_OPT\(%s,\s*\w+,\s*"([^"]*)"' % re.escape(name), f.read())
    return m.group(1) if m else None


def main():
    with open(sys.argv[2], encoding="utf-8") as f:
        resolved = yaml.safe_load(f)
    raw_path = os.path.join(TOP, "docker", "docker-compose.yml")
    with open(raw_path, encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    services = resolved["services"]

    # services
    try:
        mongo, redis, proxies, app = compose_plain.roles(resolved)
        problems = []
        if services[mongo].get("image") != "mongo:7":
            problems.append("mongo image %r" % services[mongo].get("image"))
        if services[redis].get("image") != "redis:7":
            problems.append("redis image %r" % services[redis].get("image"))
        if len(proxies) < 2:
            problems.append("one proxy only: %s" % proxies)
        app_env = compose_plain.env_dict(services[app])
        uris = [v for k, v in app_env.items() if k.startswith("MONGODB_URI")]
        for p in proxies:
            if not any(re.match(r"mongodb://%s:\d+/" % re.escape(p), u) for u in uris):
                problems.append("the app has no connection string to %s (%s)" % (p, uris))
        tap(not problems, "services: mongo:7, redis:7, %d proxies, the app through each" % len(proxies),
            "\n".join(problems))
    except ValueError as e:
        tap(False, "services: mongo:7, redis:7, two proxies, the app", e)
        return 0

    # healthchecks
    bad = []
    for name, s in services.items():
        hc = s.get("healthcheck")
        test = (hc or {}).get("test")
        if not hc or hc.get("disable") or not test or test in (["NONE"], "NONE"):
            bad.append("%s: %r" % (name, hc))
        elif isinstance(test, list) and test[0] not in ("CMD", "CMD-SHELL"):
            bad.append("%s: test %r" % (name, test))
    tap(not bad, "healthchecks: every service (%d) has one" % len(services), "\n".join(bad))

    # depends_on
    bad = []
    edges = 0
    for name, s in services.items():
        deps = s.get("depends_on") or {}
        if isinstance(deps, list):
            bad.append("%s: depends_on is a list (no condition): %s" % (name, deps))
            continue
        for dep, spec in deps.items():
            edges += 1
            if (spec or {}).get("condition") != "service_healthy":
                bad.append("%s -> %s: %r" % (name, dep, spec))
    for p in proxies:
        for dep in (mongo, redis):
            if dep not in (services[p].get("depends_on") or {}):
                bad.append("%s does not wait for %s" % (p, dep))
    for p in proxies:
        if p not in (services[app].get("depends_on") or {}):
            bad.append("%s does not wait for %s" % (app, p))
    tap(not bad and edges > 0,
        "depends_on: all %d dependencies wait for condition: service_healthy" % edges, "\n".join(bad))

    # grace
    bad = []
    notes = []
    for p in proxies:
        env = compose_plain.env_dict(services[p])
        drain = compose_plain.duration_seconds(
            env.get("MONGOCACHE_DRAIN_TIMEOUT", option_default("drain_timeout")))
        grace = compose_plain.duration_seconds(services[p].get("stop_grace_period", "10s"))
        notes.append("%s: drain %gs, grace %gs" % (p, drain, grace))
        if not grace > drain:
            bad.append("%s: stop_grace_period %gs is not above drain_timeout %gs" % (p, grace, drain))
        if services[p].get("stop_signal", "SIGTERM") != "SIGTERM":
            bad.append("%s: stop_signal %s does not drain" % (p, services[p].get("stop_signal")))
    tap(not bad, "grace: stop_grace_period above drain_timeout (%s)" % "; ".join(notes), "\n".join(bad))

    # secrets: every mention in the raw file is ${VAR:?message} or ${VAR?message}
    with open(raw_path, encoding="utf-8") as f:
        text = f.read()
    bad = []
    for var in ("MONGOCACHE_HTTP_TOKEN", "MONGOCACHE_CACHE_KEY_SECRET"):
        mentions = 0
        for node in walk(raw):
            if isinstance(node, dict) and var in node:
                mentions += 1
                value = str(node[var])
                if not re.fullmatch(r"\$\{%s:?\?[^}]+\}" % var, value):
                    bad.append("%s = %r (a default, or not required)" % (var, value))
        if mentions == 0:
            bad.append("%s is not set anywhere" % var)
        for m in re.finditer(r"\$\{%s(:?[-=+]|\})" % var, text):
            bad.append("%s used with a default or optional: %r" % (var, m.group(0)))
    if "change-me" in text:
        bad.append("the file still mentions change-me")
    tap(not bad, "secrets: the HTTP token and the key secret are required, no defaults", "\n".join(bad))

    # shared tier
    envs = [compose_plain.env_dict(services[p]) for p in proxies]
    urls = {e.get("MONGOCACHE_REDIS", "") for e in envs}
    secrets = {e.get("MONGOCACHE_CACHE_KEY_SECRET", "") for e in envs}
    ok = len(urls) == 1 and "" not in urls and len(secrets) == 1 and "" not in secrets
    ok = ok and re.match(r"redis://%s:6379" % re.escape(redis), next(iter(urls))) is not None
    tap(ok, "shared tier: %d proxies, one Redis (%s), one cache_key_secret" % (len(proxies), sorted(urls)),
        "urls %s, %d secrets" % (sorted(urls), len(secrets)))

    # redis
    cmd = services[redis].get("command") or []
    if isinstance(cmd, str):
        import shlex
        cmd = shlex.split(cmd)
    opts = {}
    for i, a in enumerate(cmd):
        if str(a).startswith("--") and i + 1 < len(cmd):
            opts[a] = str(cmd[i + 1])
    bad = []
    if opts.get("--save") != "":
        bad.append("--save %r (RDB snapshots on)" % opts.get("--save"))
    if opts.get("--appendonly") != "no":
        bad.append("--appendonly %r" % opts.get("--appendonly"))
    if opts.get("--maxmemory-policy") != "volatile-lru":
        bad.append("--maxmemory-policy %r" % opts.get("--maxmemory-policy"))
    if opts.get("--maxmemory", "0") in ("0", "0mb", "0gb"):
        bad.append("no --maxmemory")
    tap(not bad, "redis: no persistence, maxmemory %s, volatile-lru" % opts.get("--maxmemory"),
        "\n".join(bad) + "\ncommand: %r" % (cmd,))

    # the Dockerfile's runtime stage
    with open(os.path.join(TOP, "docker", "Dockerfile"), encoding="utf-8") as f:
        lines = join_continuations(f.read())
    stages = [i for i, l in enumerate(lines) if re.match(r"FROM\s", l, re.I)]
    runtime = lines[stages[-1]:] if stages else []
    users = [l.split(None, 1)[1].strip() for l in runtime if re.match(r"USER\s", l, re.I)]
    user = users[-1] if users else ""
    m = re.fullmatch(r"(\d+)(?::(\d+))?", user)
    tap(m is not None and int(m.group(1)) != 0 and (m.group(2) is None or int(m.group(2)) != 0),
        "image user: the runtime stage runs as %r (numeric, not root)" % user,
        "USER lines in the runtime stage: %r" % users)

    checks = [l for l in runtime if re.match(r"HEALTHCHECK\s", l, re.I)]
    copied = {}
    for l in runtime:
        cm = re.match(r"COPY\s+(?:--\S+\s+)*(\S+)\s+(\S+)\s*$", l, re.I)
        if cm and "--from" not in l:
            copied[cm.group(2)] = cm.group(1)
    bad = []
    if len(checks) != 1 or re.search(r"HEALTHCHECK\s+NONE", checks[0] if checks else "NONE", re.I):
        bad.append("HEALTHCHECK lines: %r" % checks)
    else:
        cmdm = re.search(r'CMD\s+\[\s*"([^"]+)"', checks[0])
        prog = cmdm.group(1) if cmdm else None
        if prog not in copied:
            bad.append("the HEALTHCHECK runs %r, which the runtime stage does not copy in" % prog)
        elif not os.access(os.path.join(TOP, copied[prog]), os.X_OK):
            bad.append("%s (copied to %s) is not executable in the tree" % (copied[prog], prog))
        for p in proxies:
            test = services[p]["healthcheck"]["test"]
            if prog and test[1] != prog:
                bad.append("%s's compose healthcheck runs %r, the image's %r" % (p, test[1], prog))
    tap(not bad, "image health: HEALTHCHECK runs a script the image copies in (%s)"
        % ", ".join("%s <- %s" % kv for kv in copied.items()), "\n".join(bad))

    # .dockerignore of each build context
    bad = []
    contexts = {}
    for name, s in services.items():
        b = s.get("build")
        if isinstance(b, dict):
            contexts[name] = os.path.normpath(b["context"])
    want_by_context = {
        os.path.normpath(TOP): [".git", ".tools", "_build", "_build-asan", "node_modules",
                                "tests/integration/node/node_modules", "docker/app/node_modules",
                                "proxy/server.o", "docker/.env"],
        os.path.normpath(os.path.join(TOP, "docker", "app")): ["node_modules"],
    }
    for name, ctx in contexts.items():
        if ctx not in want_by_context:
            bad.append("%s: unexpected build context %s" % (name, ctx))
            continue
        path = os.path.join(ctx, ".dockerignore")
        if not os.path.exists(path):
            bad.append("%s: no %s" % (name, path))
            continue
        with open(path, encoding="utf-8") as f:
            pats = [l.strip() for l in f if l.strip() and not l.startswith("#")]
        for want in want_by_context[ctx]:
            if not any(ignored(want, p) for p in pats):
                bad.append("%s: %s does not leave out %s" % (name, path, want))
        for keep in ("configure.ac", "Makefile.am", "conf/options.def", "cache/cache.c",
                     "proxy/main.c", "wire/cmd.c", "advice/shape.c", "tests/setup.sh",
                     "docker/healthcheck.sh", "docker/Dockerfile"):
            if ctx == os.path.normpath(TOP) and any(ignored(keep, p) for p in pats):
                bad.append("%s leaves out %s, which the build needs" % (path, keep))
    tap(not bad and contexts, "dockerignore: the build contexts (%s) leave out .git, .tools, build trees, "
        "node_modules" % ", ".join(sorted(set(contexts.values()))), "\n".join(bad))
    mctest.plan()
    return 0


def walk(node):
    yield node
    if isinstance(node, dict):
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


def join_continuations(text):
    out, cur = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") and not cur:
            continue
        if line.rstrip().endswith("\\"):
            cur += line.rstrip()[:-1] + " "
            continue
        out.append((cur + line).strip())
        cur = ""
    return [l for l in out if l]


def ignored(path, pattern):
    """Whether a .dockerignore pattern leaves out path or a folder above it
    (enough of Docker's rules for this check: '*' and '?' within one path
    element, a leading '**/' for any depth, a leading '/' ignored)."""
    pattern = pattern.lstrip("/")
    anywhere = pattern.startswith("**/")
    if anywhere:
        pattern = pattern[3:]
    rx = "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in pattern)
    rx = re.compile(("(?:.*/)?" if anywhere else "") + rx)
    parts = path.split("/")
    return any(rx.fullmatch("/".join(parts[:i])) for i in range(1, len(parts) + 1))


if __name__ == "__main__":
    sys.exit(main())
