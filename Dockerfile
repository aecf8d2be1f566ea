# Image for the web app and the worker (docker-compose.yml). Build: docker build -t mmlr .
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MMLR_DATA_DIR=/data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY screening ./screening
COPY store ./store
COPY reports ./reports
RUN pip install --no-cache-dir . && useradd --create-home mmlr && mkdir /data && chown mmlr /data
USER mmlr
EXPOSE 8000
CMD ["mmlr", "web", "--host", "0.0.0.0", "--port", "8000"]
