# Stand-in for the official postgres image (scripts/compose-check only): Debian's
# PostgreSQL 15 with an entry point that honours the settings docker-compose.yml uses.
ARG BASE_IMAGE=pagesync-local/debian:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
COPY postgres-entrypoint /usr/local/bin/
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
VOLUME /var/lib/postgresql/data
EXPOSE 5432
USER postgres
ENTRYPOINT ["postgres-entrypoint"]
