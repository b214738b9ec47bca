# roomchat in a container: `docker build -t roomchat . && docker run -p 8080:8080 -p 8000:8000 -p 50051:50051 roomchat`
# Not built on the machine it was written on (no container daemon there): see docs/deploy.md.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY roomchat ./roomchat
RUN pip install . && useradd --system --uid 10001 --no-create-home roomchat

USER roomchat
EXPOSE 8080 8000 50051

# Liveness from inside the container, with nothing but Python: /healthz answers 200
# while the process serves and its backend answers (ROOMCHAT_HEALTH_URL to move it).
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; url = os.environ.get('ROOMCHAT_HEALTH_URL', 'http://127.0.0.1:8080/healthz'); sys.exit(0 if urllib.request.urlopen(url, timeout=2).status == 200 else 1)"]

CMD ["roomchat", "serve", "--host", "0.0.0.0"]
