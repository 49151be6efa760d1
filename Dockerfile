# trailsight watch as a service (docs/container.md). Build: docker build -t trailsight .
# The image holds the package and the geo / ASN data (fetched and verified at build, CC-BY-4.0);
# the store and the heartbeat live in /var/lib/trailsight (a volume).

FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TRAILSIGHT_DATA=/opt/trailsight/data \
    TRAILSIGHT_HEARTBEAT=/var/lib/trailsight/heartbeat
COPY --from=build /wheels /wheels
# The data is fetched (and the ASN table's cache built) as root, then read-only for the service.
RUN pip install --no-cache-dir /wheels/*.whl \
    && rm -rf /wheels \
    && trailsight data fetch \
    && python -c "from trailsight.enrich import Enricher; Enricher.from_settings()" \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/trailsight --create-home trailsight
USER 10001:10001
WORKDIR /var/lib/trailsight
VOLUME ["/var/lib/trailsight"]
# Healthy while a watch cycle completed within the last 35 minutes (default --every is 15m).
HEALTHCHECK --interval=5m --timeout=10s --start-period=30m --retries=2 \
    CMD ["python", "-c", "import os, sys, time; sys.exit(time.time() - os.stat(os.environ['TRAILSIGHT_HEARTBEAT']).st_mtime > 2100)"]
ENTRYPOINT ["trailsight", "watch", "--heartbeat", "/var/lib/trailsight/heartbeat"]
CMD ["/logs", "--store", "/var/lib/trailsight/store"]
