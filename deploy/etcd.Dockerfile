# etcd from Debian's package, for the chaos suite on machines without an image registry (deploy/images.sh).
ARG DEBIAN=debian:bookworm-slim
FROM ${DEBIAN}
RUN apt-get update && apt-get install -y --no-install-recommends etcd-server \
 && rm -rf /var/lib/apt/lists/* && mkdir -p /var/lib/etcd && chown etcd:etcd /var/lib/etcd
LABEL org.opencontainers.image.title="etcd (Debian)"
USER etcd
WORKDIR /var/lib/etcd
EXPOSE 2379 2380
ENTRYPOINT ["/usr/bin/etcd"]
