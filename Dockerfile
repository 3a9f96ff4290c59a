# berth: one image for the operator (`berth run`) and the agent (`berth agent`).
# (Run commands for both roles: see the end of this file.)
#
# Build (BuildKit: docker 23+ uses it by default; 20.10-22 need DOCKER_BUILDKIT=1):
#   docker build -t berth .
# Behind a TLS-intercepting proxy, hand npm its CA as a build secret; it never lands in a layer:
#   DOCKER_BUILDKIT=1 docker build --secret id=npm-ca,src=/etc/ssl/certs/ca-certificates.crt -t berth .
# Without a registry: scripts/build-image.sh builds an offline stand-in base and berth:test.
ARG BASE=node:22-bookworm-slim

FROM ${BASE} AS build
WORKDIR /app
# Dependencies first: a change to src/ reuses the npm ci layer.
COPY package.json package-lock.json ./
RUN --mount=type=secret,id=npm-ca \
    if [ -f /run/secrets/npm-ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm-ca; fi \
    && npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY schemas ./schemas
COPY scripts/build-validators.mjs ./scripts/
RUN npx tsc -p tsconfig.build.json && node scripts/build-validators.mjs \
    && npm prune --omit=dev --ignore-scripts --no-audit --no-fund --offline

FROM ${BASE}
# git is not needed (isomorphic-git is pure JavaScript); tini reaps and forwards signals; `ip`
# makes the service-address range local to the host for service discovery.
RUN apt-get update && apt-get install -y --no-install-recommends tini iproute2 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY schemas ./schemas
COPY assets ./assets
# The default user is the unprivileged `node`: enough for `--help`, `validate` and an
# operator that only drives remote agents. Whatever runs replicas here (the agent, an operator
# with its local node) runs as root (`--user 0`): it gives replica files their owners and mounts
# the tmpfs for secrets, besides talking to the Docker socket.
USER node
WORKDIR /home/node
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/bin/berth.js"]
CMD ["--help"]

# Both roles run in the host's network (--network host): replicas publish their ports on the
# host's addresses, which probes and the routing mesh reach there, and service discovery (on by
# default; off with --service-addresses off) makes its address range local to the host and
# serves DNS on it, which needs --cap-add NET_ADMIN. The engine bind-mounts config and secret
# files into replicas by path, so a state dir that holds them (the agent's; the operator's, for
# its embedded local node) must be mounted at the SAME path on the host and in the container;
# berth checks this at start and exits 1 with the flag to use otherwise. Secrets live on a tmpfs
# berth mounts under <state-dir>/secrets (<state-dir>/agent/secrets for the operator); for the
# host's engine to see it, the bind mount needs rshared propagation (the host path must sit on a
# shared mount: `/` is on systemd hosts) and the container the right to mount (SYS_ADMIN; under
# AppArmor also apparmor=unconfined). Both run as root (--user 0): files get their owners, the
# tmpfs is mounted.
#
# Operator (`berth run`) on the local engine, with the repository mounted in:
#   docker run -d --name berth --user 0 --network host \
#     --cap-add SYS_ADMIN --cap-add NET_ADMIN --security-opt apparmor=unconfined \
#     -v /var/run/docker.sock:/var/run/docker.sock -v /srv/deploy-repo:/repo \
#     --mount type=bind,src=/var/lib/berth/operator,dst=/var/lib/berth/operator,bind-propagation=rshared \
#     -v /etc/berth/age-key.txt:/run/berth/age-key.txt:ro -e BERTH_AGE_KEY_FILE=/run/berth/age-key.txt \
#     berth run --repo /repo --state-dir /var/lib/berth/operator
# (With only remote agents, `--no-local-node --cluster-listen ...` or `--agent URL`, the operator
# needs neither the socket nor the state-dir flags above.)
#
# Agent (`berth agent`):
#   docker run -d --name berth-agent --user 0 --network host \
#     --cap-add SYS_ADMIN --cap-add NET_ADMIN --security-opt apparmor=unconfined \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     --mount type=bind,src=/var/lib/berth/agent,dst=/var/lib/berth/agent,bind-propagation=rshared \
#     berth agent --state-dir /var/lib/berth/agent --join https://OPERATOR:7946 --token TOKEN
# (or `--listen 0.0.0.0:7947 --token TOKEN` instead of --join). Create the host directories
# first (mkdir -p). Without SYS_ADMIN: mount the tmpfs on the host once, before the container
# starts, and use a plain -v /var/lib/berth/agent:/var/lib/berth/agent:
#   mkdir -p /var/lib/berth/agent/secrets
#   mount -t tmpfs -o size=64m,mode=0700 tmpfs /var/lib/berth/agent/secrets
