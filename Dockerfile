# healproxy's container image: a static binary on an empty base, run as a
# non-root user with the repository's default config (proxy.hcl).
#
#   docker build -t healproxy .
#   docker run --rm -p 7860:7860 healproxy
#   docker run --rm -p 7860:7860 -v "$PWD/my.hcl:/etc/healproxy/proxy.hcl:ro" healproxy
#
# An example: no test builds or runs it (the test machines have no
# container runtime). The binary it builds is the one the tests build.
# The image has no shell; model plugins are re-executions of the binary
# itself (/proc/self/exe), so it needs nothing else. Health state persists
# when the config's state.path is under /var/lib/healproxy and that
# folder is a volume.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/usr/local/bin/healproxy ./cmd/healproxy \
 && /out/usr/local/bin/healproxy validate -config proxy.hcl
# What an empty base lacks: a user, CA certificates (HTTPS upstreams), a
# writable /tmp (plugin sockets) and the state folder.
RUN mkdir -p /out/etc/ssl/certs /out/tmp /out/var/lib/healproxy /out/etc/healproxy \
 && cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/ \
 && echo 'healproxy:x:65532:65532:healproxy:/var/lib/healproxy:/sbin/nologin' > /out/etc/passwd \
 && echo 'healproxy:x:65532:' > /out/etc/group \
 && cp proxy.hcl /out/etc/healproxy/proxy.hcl \
 && chmod 1777 /out/tmp \
 && chown 65532:65532 /out/var/lib/healproxy && chmod 0700 /out/var/lib/healproxy

FROM scratch
COPY --from=build /out/ /
USER 65532:65532
WORKDIR /var/lib/healproxy
EXPOSE 7860
ENTRYPOINT ["/usr/local/bin/healproxy"]
# Inside a container the listener must not be loopback only. Admin
# endpoints still answer only loopback clients unless admin.token is set
# (HEALPROXY_ADMIN_TOKEN with the default config).
CMD ["run", "-config", "/etc/healproxy/proxy.hcl", "-listen", "0.0.0.0:7860", "-log-format", "json"]
