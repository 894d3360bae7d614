# paynet validator image: `paynet-node` as the entrypoint, node home on the /home/paynet volume.
#
#   docker build -t paynet:0.1.0 .
#   docker run --rm paynet:0.1.0 --help
#   docker run -v paynet-home:/home/paynet -e PAYNET_NODE_PASSPHRASE=... paynet:0.1.0 run --home /home/paynet
#
# deploy/compose.yaml runs four validators from this image (see docs/operations.md).
# Written without a Docker engine at hand: not built or run in this repository's CI yet.

# ---- build: a virtualenv with paynet and its dependencies ----------------------------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Only needed when a dependency has no wheel for this platform (plyvel then builds against libleveldb).
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential libleveldb-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Copy only what the package needs: the build context may hold a venv, test homes and backups.
COPY pyproject.toml README.md ./
COPY chain ./chain
COPY consensus ./consensus
COPY network ./network
COPY node ./node
COPY wallet ./wallet
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install . \
 && site=$(/opt/venv/bin/python -c "import node, pathlib; print(pathlib.Path(node.__file__).parent)") \
 && if [ ! -d "$site/explorer" ]; then cp -r node/explorer "$site/explorer"; fi
# ^ the explorer's static files are not package data in pyproject.toml yet; copy them next to node/.

# ---- runtime ---------------------------------------------------------------------------------------
FROM python:3.11-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libleveldb1d \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /home/paynet --create-home --shell /usr/sbin/nologin paynet \
 && chmod 0700 /home/paynet
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER paynet
WORKDIR /home/paynet
# config.toml, genesis.json, node.crt, the encrypted node_key.json, data/ (LevelDB + consensus WAL), control.sock
VOLUME ["/home/paynet"]
# p2p (TLS 1.3, mutual auth) and the HTTP API / explorer / metrics; both as set in config.toml
EXPOSE 26656 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import tomllib, urllib.request; c = tomllib.load(open('/home/paynet/config.toml', 'rb'))['api']; urllib.request.urlopen(f\"http://127.0.0.1:{c['port']}/status\", timeout=4)"]
ENTRYPOINT ["paynet-node"]
CMD ["run", "--home", "/home/paynet"]
