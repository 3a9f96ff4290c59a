# berth: one image for the operator (`berth run`) and the agent (`berth agent`).
# Build:  docker build -t berth .
# Operator on the local engine:  docker run -v /var/run/docker.sock:/var/run/docker.sock -v "$PWD":/repo berth run --repo /repo
# Agent:  docker run -v /var/run/docker.sock:/var/run/docker.sock berth agent --listen 0.0.0.0:7947 --token ...

FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm ci --ignore-scripts && npx tsc -p tsconfig.build.json && npm prune --omit=dev

FROM node:22-bookworm-slim
# git is not needed (isomorphic-git is pure JavaScript); tini reaps and forwards signals.
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY schemas ./schemas
# The operator and agent talk to the Docker socket, which usually needs root or the docker
# group of the host; run as the unprivileged `node` user when the socket's group allows it:
#   docker run --user node --group-add "$(stat -c %g /var/run/docker.sock)" ...
USER node
WORKDIR /home/node
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/bin/berth.js"]
CMD ["--help"]
