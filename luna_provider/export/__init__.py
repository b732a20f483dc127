"""CSV exports of faces and events: the columns, the rows, the zip archive and the create checks.

Shared by the exporter and reporter task types. Nothing here imports Airflow, so the API can run
the create checks.
"""
