"""The project's SQL, one query per file, shipped inside the installed package as `fm_sql` (see pyproject.toml):
views/ (one CREATE VIEW per lake table), checks/ (the quality checks, attached as Dagster asset checks) and
reports/ (analytics for `fm sql -f`). fm_resources.warehouse.sql_dir() finds them."""
