# The ai-agent workload image. One Dockerfile, two bases, selected with build args
# (`scalelab image` picks them and stages the build context: wheels/ and app/):
#   online : BASE_IMAGE=python:3.11-slim-bookworm  PIP_INDEX=""          (dependencies from PyPI)
#   offline: BASE_IMAGE=scalelab-base:bookworm-1   PIP_INDEX=--no-index  (host wheelhouse only)
# Built with the legacy builder (DOCKER_BUILDKIT=0), never with --pull. pip runs from its wheel,
# so the image holds no pip, and the kit's code is the last layer (code changes rebuild fast).
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ARG PIP_INDEX=""
ENV LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH \
    AGENT_HOST=0.0.0.0 \
    AGENT_PORT=8000

# Dependencies: uvicorn and its pure-Python deps (requirements-agent.txt).
COPY requirements-agent.txt /tmp/build/
COPY wheels/ /tmp/build/wheels/
RUN python3 -m venv --without-pip /opt/venv \
 && pip_whl=$(echo /tmp/build/wheels/pip-*.whl) \
 && /opt/venv/bin/python "$pip_whl/pip" install ${PIP_INDEX} --find-links=/tmp/build/wheels \
        -r /tmp/build/requirements-agent.txt \
 && rm -rf /tmp/build

# The scalelab package itself, without its dependencies (the agent needs only uvicorn).
COPY app/ /tmp/app/
RUN pip_whl=$(echo /tmp/app/pip-*.whl) \
 && /opt/venv/bin/python "$pip_whl/pip" install --no-deps --no-index /tmp/app/scalelab-*.whl \
 && /opt/venv/bin/python -c "import scalelab.agent, uvicorn" \
 && rm -rf /tmp/app

USER 65532:65532
WORKDIR /tmp
EXPOSE 8000
# Docker "healthy" means ready (warm-up over), so `compose up --wait` waits for cold starts.
# A raw HTTP/1.0 request with `python -S` (no site, no urllib): ~10 ms of CPU inside the limit.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-S", "-c", "import os,socket,sys; s=socket.create_connection(('127.0.0.1', int(os.environ.get('AGENT_PORT', '8000'))), 2); s.sendall(b'GET /readyz HTTP/1.0\\r\\n\\r\\n'); sys.exit(0 if s.recv(12).endswith(b' 200') else 1)"]
STOPSIGNAL SIGTERM
CMD ["python", "-m", "scalelab.agent"]
