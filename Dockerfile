# The Fargate worker (functions/fargate.ts). Built by `sst deploy` (or `docker build .`).
# Stage 1 bundles the TypeScript with esbuild (a dev dependency); stage 2 holds only the bundle
# and the production dependencies, which the bundle imports at run time.

FROM node:22-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY core ./core
COPY functions ./functions
COPY jobs ./jobs
RUN npx esbuild functions/fargate.ts --bundle --platform=node --format=esm --target=node22 \
      --packages=external --outfile=dist/fargate.mjs

FROM node:22-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# The task definition runs this as 1000:1000 (this image's `node` user) on a read-only root
# filesystem. /tmp is its one writable directory: a task volume mounted there, which ECS fills
# from this declared volume, so it keeps /tmp's mode (1777). An image given by
# WARDEN_FARGATE_IMAGE needs the same VOLUME line for a writable /tmp.
VOLUME ["/tmp"]
USER node
# ECS sends SIGTERM, then SIGKILL after the task's stopTimeout: the worker hands its jobs back
# in between. --expose-gc lets the memory guard collect at once after aborting a job for memory.
STOPSIGNAL SIGTERM
CMD ["node", "--expose-gc", "dist/fargate.mjs"]
