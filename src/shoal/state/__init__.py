"""The state database: the only place with SQL. See db.py and schema/*.sql."""
