# Multi-stage build: a static binary on a small non-root image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/dynakv ./cmd/dynakv

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/dynakv /usr/local/bin/dynakv
WORKDIR /var/lib/dynakv
# RESP, memcached, metrics/admin HTTP, gossip, cluster transport.
EXPOSE 6379 11211 9121 7946 7947
USER nonroot:nonroot
VOLUME ["/var/lib/dynakv"]
# Inside a container the node must listen on all interfaces to be reachable;
# keep the ports unpublished or firewalled unless you also set --requirepass.
ENTRYPOINT ["dynakv", "server", "--data-dir", "/var/lib/dynakv/data", \
  "--resp", "0.0.0.0:6379", "--memcache", "0.0.0.0:11211", "--http", "0.0.0.0:9121", \
  "--gossip", "0.0.0.0:7946", "--cluster", "0.0.0.0:7947"]
