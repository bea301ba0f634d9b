# One image for every role: each compose service runs `rswarm <role>`.
FROM golang:1.26-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libzmq3-dev pkg-config && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN go build -o /out/rswarm ./cmd/rswarm

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libzmq5 ca-certificates && rm -rf /var/lib/apt/lists/*
# Roles that do not drive Docker run as this user; /data/bus (the bus keys,
# a volume in docker-compose.yml) starts owned by it, and a named volume
# mounted there takes that ownership.
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin rswarm \
 && mkdir -p /data/bus/authorized && chown -R rswarm:rswarm /data && chmod 0700 /data/bus
COPY --from=build /out/rswarm /usr/local/bin/rswarm
USER rswarm
WORKDIR /data
ENTRYPOINT ["rswarm"]
