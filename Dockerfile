# One image for every process of ours: the front ends (`meet-coordinator serve`), the one-shot
# jobs (`meet-coordinator migrate`, `meet-coordinator ray-hosts`) and the Ray nodes
# (`ray start`, whose workers run the room hosts from this same installed code).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml ./
COPY coordinator ./coordinator
COPY api ./api
COPY storage ./storage
RUN python -m venv /opt/venv && /opt/venv/bin/pip install .

FROM python:3.11-slim
RUN groupadd --system --gid 10001 meet \
    && useradd --system --uid 10001 --gid meet --home-dir /home/meet --create-home meet
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER meet
WORKDIR /home/meet
EXPOSE 8071
# /__heartbeat__ answers 503 when the database refuses a write; urlopen raises on it.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8071/__heartbeat__', timeout=4)"]
ENTRYPOINT ["meet-coordinator"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8071"]
