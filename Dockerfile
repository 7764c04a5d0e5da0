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
RUN npx esbuild functions/fargate.ts --bundle --platform=node --format=esm --target=node22 \
      --packages=external --outfile=dist/fargate.mjs

FROM node:22-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
USER node
# ECS sends SIGTERM, then SIGKILL after the task's stopTimeout: the worker hands its jobs back
# in between. --expose-gc lets the memory guard collect at once after aborting a job for memory.
STOPSIGNAL SIGTERM
CMD ["node", "--expose-gc", "dist/fargate.mjs"]
