-- Runs once, when the compose stack's PostgreSQL volume is first created.
-- chainworker_owner owns the database and runs migrations (DATABASE_ADMIN_URL);
-- chainworker_app is the runtime role: neither owner nor superuser, so RLS binds it
-- (DATABASE_URL). The migrations grant chainworker_app what it needs.
-- Development passwords: production databases get their roles from the platform team.
CREATE ROLE chainworker_owner LOGIN CREATEROLE PASSWORD 'owner-dev-password';
CREATE ROLE chainworker_app LOGIN PASSWORD 'app-dev-password';
CREATE DATABASE chainworker OWNER chainworker_owner;
\connect chainworker
ALTER SCHEMA public OWNER TO chainworker_owner;
