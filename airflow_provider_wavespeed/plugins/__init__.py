"""The WaveSpeed view in the Airflow UI (Airflow 3.1+): a FastAPI app Airflow mounts, shown as external views."""
