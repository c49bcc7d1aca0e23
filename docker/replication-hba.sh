#!/bin/sh
# Run once by the PostGIS image when it makes the database: let the replica service stream
# WAL as the cityhex user, with a password.
echo "host replication cityhex all scram-sha-256" >> "$PGDATA/pg_hba.conf"
