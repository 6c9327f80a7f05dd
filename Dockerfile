# One image for every stage: `hph` is the entrypoint, the stage is the argument.
#   docker build -t hph .
#   docker run hph up                       # api + every stage in one process
#   docker run hph worker samples-writer    # one stage; run as many as you like on one durable consumer
FROM node:20-bookworm-slim
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8080
WORKDIR /app
COPY package.json package-lock.json ./
# tsx (a runtime dependency) runs the TypeScript sources as they are; no build step
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY bin ./bin
COPY api ./api
COPY cli ./cli
COPY pipeline ./pipeline
COPY ingest ./ingest
COPY privacy ./privacy
COPY processors ./processors
COPY projections ./projections
COPY schema ./schema
COPY streams ./streams
COPY config.ts errors.ts log.ts tsconfig.json ./
USER node
EXPOSE 8080
ENTRYPOINT ["node", "bin/hph.js"]
CMD ["up"]
