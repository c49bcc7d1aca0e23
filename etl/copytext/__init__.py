"""COPY text: PostgreSQL's COPY text format for whole columns of values (fields), geometries
as hex EWKB (ewkb) and the writing of it into a table (writer), shared by the import
pipeline and the demo city."""
