# One image for every stage: `hph` is the entrypoint, the stage is the argument.
#   docker build -t hph .
#   docker run hph up                       # api + every stage in one process
#   docker run hph worker samples-writer    # one stage; run as many as you like on one durable consumer
# Node 24 (the current LTS). The build stage compiles to dist/; the image holds dist/, the runtime
# dependencies and package.json only, and runs them with node alone (no tsx, no TypeScript).
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json config.ts errors.ts log.ts ./
COPY api ./api
COPY cli ./cli
COPY pipeline ./pipeline
COPY ingest ./ingest
COPY privacy ./privacy
COPY processors ./processors
COPY projections ./projections
COPY schema ./schema
COPY streams ./streams
RUN npm run build

FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:24-bookworm-slim
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8080
WORKDIR /app
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# the node image's unprivileged user: the program writes nothing to its own files
USER node
# a larger young generation than Node's default: the stages' short-lived objects die in fewer scavenges (docs/operating.md)
ENV NODE_OPTIONS=--max-semi-space-size=32
EXPOSE 8080
ENTRYPOINT ["node", "dist/cli/hph.js"]
CMD ["up"]
