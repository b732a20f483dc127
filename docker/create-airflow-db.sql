-- The service database (luna) is created by the image; Airflow gets its own database.
CREATE DATABASE airflow OWNER luna;
