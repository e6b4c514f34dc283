# The Barge operator image. Built with `docker build .` anywhere, and on the local cluster's real node
# with `barge dev image build -t localhost/barge/operator:dev .` (which makes the base image itself).
# The base is pinned by its dated tag; the final stage has Python and the installed package, no build tools.
ARG BASE=debian:bookworm-20251229-slim

FROM ${BASE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/barge
COPY pyproject.toml README.md /src/
COPY operator /src/operator
RUN /opt/barge/bin/pip install --no-cache-dir --disable-pip-version-check /src \
    && /opt/barge/bin/pip uninstall -y --disable-pip-version-check pip setuptools \
    && find /opt/barge -name __pycache__ -prune -exec rm -rf {} +

FROM ${BASE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
    && groupadd --system --gid 65532 barge \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin barge
COPY --from=build /opt/barge /opt/barge
ENV PATH=/opt/barge/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
ENTRYPOINT ["barge", "operator"]
