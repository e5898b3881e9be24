# syntax=docker/dockerfile:1
# Gatehouse: two stages, so the runtime image holds only production dependencies
# and compiled JavaScript (no TypeScript sources, no compiler, no test tools).

# ---- build: compile TypeScript into dist/ -----------------------------------
FROM node:20-bookworm-slim AS build
WORKDIR /app

# Manifests first: the dependency layer is reused until the lockfile changes.
COPY package.json package-lock.json ./
# swagger-ui-dist pulls in @scarf/scarf, whose install script reports downloads: not from our builds.
ENV SCARF_ANALYTICS=false
RUN npm ci

COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY migrations ./migrations
COPY scripts ./scripts
# Emits dist/src/server.js, dist/scripts/*.js and dist/migrations/*.js, and copies
# src/passwords/common-passwords.txt next to its compiled module, where it is read at run time.
RUN npm run build

# ---- runtime ----------------------------------------------------------------
FROM node:20-bookworm-slim AS runtime
WORKDIR /app

# production: HMAC is required (set HMAC_CLIENTS), keys are never generated (mount
# them into /app/keys or set JWT_PRIVATE_KEY), internal error details stay hidden.
# npm runs the operator scripts here (`npm run migrate`): it need not look for a newer npm each time.
ENV NODE_ENV=production \
    PORT=3000 \
    DATA_DIR=/app/data \
    KEYS_DIR=/app/keys \
    NPM_CONFIG_UPDATE_NOTIFIER=false

# --ignore-scripts: nothing we ship needs an install script, and none then runs as root here.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

# Code and dependencies stay owned by root, so the service cannot rewrite itself;
# only its data and key folders are writable by it.
COPY --from=build /app/dist ./dist
# The operator scripts' launcher (plain JavaScript, no build): with no scripts/ and no tsx
# here, `npm run migrate`, `keys:*`, `user:*`, `prune`, … run dist/scripts/*.js through it.
COPY bin ./bin
RUN mkdir -p /app/data /app/keys && chown node:node /app/data /app/keys

# Ownership is set before VOLUME: a fresh named volume copies it from the image.
# /app/data holds the embedded PGlite database (unused when DATABASE_URL is set).
VOLUME ["/app/data", "/app/keys"]

USER node
EXPOSE 3000

# No curl in the slim image, so node itself asks the liveness endpoint.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz').then(r => process.exit(r.ok ? 0 : 1)).catch(() => process.exit(1))"]

# node is PID 1 and handles SIGTERM itself (graceful drain, SHUTDOWN_TIMEOUT seconds,
# then exit 0), so tini is not needed; it spawns no children that would need reaping.
# Give `docker stop` more than SHUTDOWN_TIMEOUT (its default grace is also 10 s), e.g. `docker stop -t 15`.
# Run node directly, not `npm start`: npm would rebuild (prestart) and does not pass signals on reliably.
# Operator scripts run as npm scripts, with the server's environment (or only DATABASE_URL and
# what else they use), e.g. migrations before a deploy:
#   docker run --rm --env-file prod.env gatehouse npm run migrate
# (likewise migrate:status, migrate:down, keys:generate, keys:list, keys:retire, user:grant, user:revoke, prune, mail:show).
STOPSIGNAL SIGTERM
CMD ["node", "dist/src/server.js"]
