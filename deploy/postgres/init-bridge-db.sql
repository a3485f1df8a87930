-- The bridge's own database, beside Temporal's (temporal, temporal_visibility).
CREATE ROLE bridge LOGIN PASSWORD 'bridge';
CREATE DATABASE bridge OWNER bridge;
