# The app for docker-compose.yml: CPU torch, the project with its scale-out extra, the web front end's modules.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir -e ".[scale]" \
 && (cd web && npm ci --no-audit --no-fund --loglevel=error)
EXPOSE 9090
CMD ["invoke-canvas", "--host", "0.0.0.0"]
