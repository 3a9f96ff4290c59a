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
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN --mount=type=secret,id=npm-ca \
    if [ -f /run/secrets/npm-ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm-ca; fi \
    && npm ci --ignore-scripts --no-audit --no-fund \
    && npx tsc -p tsconfig.build.json \
    && npm prune --omit=dev

FROM ${BASE}
# git is not needed (isomorphic-git is pure JavaScript); tini reaps and forwards signals.
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY schemas ./schemas
# The operator talks to the Docker socket, which usually needs root or the docker group of the
# host; it can run as the unprivileged `node` user when the socket's group allows it:
#   docker run --user node --group-add "$(stat -c %g /var/run/docker.sock)" ...
# The agent runs as root (`--user 0`): it gives replica files their owners and mounts the tmpfs
# for secrets.
USER node
WORKDIR /home/node
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/bin/berth.js"]
CMD ["--help"]

# Operator (`berth run`) on the local engine, with the repository mounted in:
#   docker run -d --name berth --user 0 -v /var/run/docker.sock:/var/run/docker.sock \
#     -v "$PWD":/repo -v /var/lib/berth/operator:/var/lib/berth/operator \
#     berth run --repo /repo --state-dir /var/lib/berth/operator
#
# Agent (`berth agent`): the engine bind-mounts the agent's config and secret files into
# replicas by path, so the state dir must be mounted at the SAME path on the host and in the
# container (the agent checks this at start and exits 1 otherwise). Secrets live on a tmpfs the
# agent mounts under <state-dir>/secrets; for the host's engine to see it, the bind mount needs
# rshared propagation and the agent the right to mount:
#   docker run -d --name berth-agent --user 0 --network host \
#     --cap-add SYS_ADMIN --security-opt apparmor=unconfined \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     --mount type=bind,src=/var/lib/berth/agent,dst=/var/lib/berth/agent,bind-propagation=rshared \
#     berth agent --state-dir /var/lib/berth/agent --join https://OPERATOR:7948 --token ...
# (or `--listen 0.0.0.0:7947 --token ...` instead of --join). The host path must exist and sit
# on a shared mount (systemd hosts: yes). Without SYS_ADMIN, mount the tmpfs on the host once
# before starting the agent and use a plain -v /var/lib/berth/agent:/var/lib/berth/agent:
#   mkdir -p /var/lib/berth/agent/secrets
#   mount -t tmpfs -o size=64m,mode=0700 tmpfs /var/lib/berth/agent/secrets
