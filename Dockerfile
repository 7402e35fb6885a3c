# mixplan dashboard: docker build -t mixplan . && docker run -p 8501:8501 -v mixplan-data:/data mixplan
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    MIXPLAN_HOME=/data

# CPU build of torch first, so installing mixplan does not pull the CUDA one.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.3"

WORKDIR /opt/mixplan
COPY pyproject.toml README.md ./
COPY engine engine
COPY app app
COPY db db
COPY examples examples
COPY scripts scripts
# Editable, like a source checkout: the demo logs under examples/ stay next to the code.
RUN pip install -e . \
    && useradd --create-home --uid 1000 mixplan \
    && mkdir -p /data && chown mixplan /data

USER mixplan
VOLUME /data
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"
CMD ["mixplan", "dashboard", "--host", "0.0.0.0", "--port", "8501"]
