# One image for the five Shoal services; the command picks one:
#   python -m services.api | scheduler | autoscaler | healer | node_agent
# BASE is any Debian-like image with python3 and python3-venv. No registry is reachable
# where Shoal is developed, so scripts/build-image.sh makes one with debootstrap and
# `docker import`, then builds this with --build-arg BASE=shoal-base:bookworm.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/shoal/bin:$PATH \
    SHOAL_KAFKA_BOOTSTRAP=127.0.0.1:9092

# Extra CA certificates (PEM) to trust while installing, for networks behind a TLS proxy;
# scripts/build-image.sh passes the host's /usr/local/share/ca-certificates.
ARG EXTRA_CA=""
RUN if [ -n "$EXTRA_CA" ]; then \
      printf '%s\n' "$EXTRA_CA" > /usr/local/share/ca-certificates/build-extra.crt \
      && update-ca-certificates >/dev/null; \
    fi

WORKDIR /src
COPY pyproject.toml README.md ./
COPY events events
COPY services services
RUN python3 -m venv /opt/shoal \
 && PIP_CERT=/etc/ssl/certs/ca-certificates.crt /opt/shoal/bin/pip install --no-cache-dir . \
 && rm -rf /src \
 && useradd --system --uid 10001 --no-create-home shoal
WORKDIR /
USER 10001
CMD ["python3", "-m", "services.api"]
