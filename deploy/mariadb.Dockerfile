# MariaDB from Debian's package, for the chaos suite on machines without an image registry (deploy/images.sh).
# Creates MARIADB_DATABASE and MARIADB_USER (password MARIADB_PASSWORD) on first start.
ARG DEBIAN=debian:bookworm-slim
FROM ${DEBIAN}
RUN apt-get update && apt-get install -y --no-install-recommends mariadb-server \
 && rm -rf /var/lib/apt/lists/* /var/lib/mysql/* && mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld /var/lib/mysql
COPY deploy/mariadb-entrypoint.sh /usr/local/bin/mariadb-entrypoint.sh
LABEL org.opencontainers.image.title="MariaDB (Debian)"
EXPOSE 3306
ENTRYPOINT ["/usr/local/bin/mariadb-entrypoint.sh"]
