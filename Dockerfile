# SalesPulse image: one image, four roles, chosen by the command
# (`worker`, `collector`, `gateway`, `generate-events`...); see deploy/compose and
# deploy/kubernetes. Build from the repository root:  docker build -t salespulse .
FROM python:3.11-slim AS build
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# jemalloc, for workers with large state: run them with LD_PRELOAD=libjemalloc.so.2
# (see worker_allocator in salespulse/config.py and docs/operations.md).
RUN apt-get update && apt-get install -y --no-install-recommends libjemalloc2 \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 10001 salespulse \
    && mkdir -p /var/lib/salespulse /etc/salespulse \
    && chown salespulse /var/lib/salespulse
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY deploy/targets.yaml /etc/salespulse/targets.yaml
COPY deploy/mappings /etc/salespulse/mappings
ENV SALESPULSE_HOME=/var/lib/salespulse \
    SALESPULSE_TARGETS=/etc/salespulse/targets.yaml \
    PYTHONUNBUFFERED=1
USER salespulse
WORKDIR /var/lib/salespulse
VOLUME ["/var/lib/salespulse"]
EXPOSE 8000 8080
ENTRYPOINT ["salespulse"]
CMD ["--help"]
