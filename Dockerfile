# One image for every part of a distributed deployment: the Luna Tasks API and the Airflow
# components (api-server, scheduler, dag-processor, triggerer, workers) all run from it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 AIRFLOW_HOME=/opt/airflow
WORKDIR /opt/luna
COPY setup.cfg pyproject.toml README.md ./
COPY luna_provider ./luna_provider
COPY api_spec ./api_spec
COPY dags ./dags
COPY plugins ./plugins
RUN pip install -e ".[s3]" "apache-airflow[celery]>=3.3,<4" "apache-airflow-providers-cncf-kubernetes"

ENV AIRFLOW__CORE__DAGS_FOLDER=/opt/luna/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/luna/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False
EXPOSE 5050 8080
