# mixplan team server: the dashboard (and CLI) on a PostgreSQL store; see compose.yaml and README "Team deployment".
# Build: podman build -t mixplan .   (docker build works the same)
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    MIXPLAN_HOME=/data \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# The CPU build of torch first, so installing mixplan does not pull the CUDA one (GBs).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_SPEC="torch>=2.3"
# hadolint ignore=DL3013
RUN python3 -m venv /opt/venv \
    && pip install --index-url "${TORCH_INDEX_URL}" --extra-index-url https://pypi.org/simple "${TORCH_SPEC}"

WORKDIR /opt/mixplan
COPY pyproject.toml README.md ./
COPY engine engine
COPY app app
COPY db db
COPY examples examples
# Editable, like a source checkout: the demo logs under examples/ stay next to the code.
# (Ranges, not pins: the versions pyproject.toml allows; DL3013.)
# hadolint ignore=DL3013
RUN pip install -e ".[auth]" \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin mixplan \
    && mkdir -p /data \
    && chown mixplan /data

USER 10001
VOLUME /data
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"]
# Migrations first (a fresh or older database is brought to the newest schema), then the dashboard.
# Listening on 0.0.0.0 needs sign-in (MIXPLAN_AUTH_FILE, see README) or an explicit --no-auth.
CMD ["sh", "-c", "mixplan db upgrade && exec mixplan dashboard --host 0.0.0.0 --port 8501"]
